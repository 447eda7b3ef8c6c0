// `import Sprof` is the one import library users and the CLI need: the event, sampling and
// output vocabulary comes along.
@_exported import SprofCore
@_exported import SprofRecording
@_exported import SprofProfile
@_exported import SprofOutput
@_exported import SprofFormats
@_exported import SprofCounting
