// Package version holds the build's version, set with
// -ldflags "-X github.com/tributary-sync/tributary/internal/version.Version=v1.2.3".
package version

// Version of this build.
var Version = "0.1.0-dev"

// Protocol is the version of the wire protocol in pkg/events.
const Protocol = 1
