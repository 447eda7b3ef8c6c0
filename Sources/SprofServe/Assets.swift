/// The pages' static files, embedded in the binary by SwiftPM (`.embedInCode`).
enum Assets {
    struct File: Sendable {
        var type: String
        var body: String
    }

    static let files: [String: File] = [
        "app.js": File(type: "text/javascript; charset=utf-8", body: String(decoding: PackageResources.app_js, as: UTF8.self)),
        "memory.js": File(type: "text/javascript; charset=utf-8", body: String(decoding: PackageResources.memory_js, as: UTF8.self)),
        "flame.js": File(type: "text/javascript; charset=utf-8", body: String(decoding: PackageResources.flame_js, as: UTF8.self)),
        "transforms.js": File(type: "text/javascript; charset=utf-8", body: String(decoding: PackageResources.transforms_js, as: UTF8.self)),
        "timeline.js": File(type: "text/javascript; charset=utf-8", body: String(decoding: PackageResources.timeline_js, as: UTF8.self)),
        "source.js": File(type: "text/javascript; charset=utf-8", body: String(decoding: PackageResources.source_js, as: UTF8.self)),
        "app.css": File(type: "text/css; charset=utf-8", body: String(decoding: PackageResources.app_css, as: UTF8.self)),
    ]
}
