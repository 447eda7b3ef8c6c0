import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// Parses a rendered SVG with a real XML parser and collects what the tests look at.
final class SVGInspector: NSObject, XMLParserDelegate {
    struct Frame {
        var title = ""
        var label = ""
        var x = 0.0, y = 0.0, width = 0.0
        var fill = ""
        var dataX = "", dataW = ""
    }

    private(set) var frames: [Frame] = []
    private(set) var texts: [String: String] = [:]
    private(set) var rootAttributes: [String: String] = [:]
    private(set) var error: Error?
    private var current: Frame?
    private var element = ""
    private var textID: String?
    private var buffer = ""

    init(_ svg: String) {
        super.init()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = self
        if !parser.parse() {
            error = parser.parserError ?? NSError(domain: "xml", code: 1)
        }
    }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?,
                qualifiedName: String?, attributes: [String: String] = [:]) {
        element = name
        buffer = ""
        switch name {
        case "svg": rootAttributes = attributes
        case "g" where attributes["class"] == "f":
            current = Frame(dataX: attributes["data-x"] ?? "", dataW: attributes["data-w"] ?? "")
        case "rect" where current != nil:
            current?.x = Double(attributes["x"] ?? "") ?? -1
            current?.y = Double(attributes["y"] ?? "") ?? -1
            current?.width = Double(attributes["width"] ?? "") ?? -1
            current?.fill = attributes["fill"] ?? ""
        case "text": textID = attributes["id"]
        default: break
        }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { buffer += string }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        switch name {
        case "title" where current != nil: current?.title = buffer
        case "text":
            if current != nil {
                current?.label = buffer
            } else if let id = textID {
                texts[id] = buffer
            }
            textID = nil
        case "g":
            if let f = current { frames.append(f) }
            current = nil
        default: break
        }
        buffer = ""
    }

    func frame(named name: String) -> Frame? {
        frames.first { $0.title.hasPrefix(name + " (") }
    }
}
