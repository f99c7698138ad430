package main

import "runtime/debug"

// releaseVersion, when set at link time (go build -ldflags
// "-X main.releaseVersion=v1.2.3"), is the version nodes report.
var releaseVersion string

// buildVersion names this binary in node metadata: releaseVersion, else
// the module version of a released build, else the VCS revision it was
// built from, else "dev".
func buildVersion() string {
	if releaseVersion != "" {
		return releaseVersion
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "dev"
	}
	return rev[:min(len(rev), 12)] + dirty
}
