package apps

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/shoal-rt/shoal/sockjs"
)

// SockJSClientPath is where a node serves the sockjs-client it found, so
// iframe and demo pages work without internet access.
const SockJSClientPath = "/sockjs.min.js"

// sockJSClientCandidates are where a copy of sockjs-client installed from
// npm (or Debian's node-sockjs-client) is looked for, relative to the
// binary's directory and to the working directory, when no path is given.
var sockJSClientCandidates = []string{
	"node_modules/sockjs-client/dist/sockjs.min.js",
	"sockjs-client/dist/sockjs.min.js",
	"sockjs.min.js",
}

// debianSockJSClient is Debian's node-sockjs-client package's copy.
const debianSockJSClient = "/usr/share/nodejs/sockjs-client/dist/sockjs.min.js"

// FindSockJSClient returns the sockjs.min.js file to serve. A non-empty
// path must lead to one: the file itself, a node_modules folder, the
// sockjs-client package folder or a folder whose node_modules holds it;
// otherwise it is an error. An empty path searches beside the binary, in
// the working directory and Debian's node-sockjs-client, and returns ""
// when none is there (pages then load the CDN's copy).
func FindSockJSClient(path string) (string, error) {
	if path != "" {
		info, err := os.Stat(path)
		if err != nil {
			return "", fmt.Errorf("apps: sockjs-client: %w", err)
		}
		if !info.IsDir() {
			return path, nil
		}
		for _, rel := range []string{"dist/sockjs.min.js", "sockjs-client/dist/sockjs.min.js", "node_modules/sockjs-client/dist/sockjs.min.js"} {
			if f := filepath.Join(path, rel); isFile(f) {
				return f, nil
			}
		}
		return "", fmt.Errorf("apps: sockjs-client: no dist/sockjs.min.js under %s (npm install sockjs-client there)", path)
	}
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
	}
	if wd, err := os.Getwd(); err == nil {
		dirs = append(dirs, wd)
	}
	for _, dir := range dirs {
		for _, rel := range sockJSClientCandidates {
			if f := filepath.Join(dir, rel); isFile(f) {
				return f, nil
			}
		}
	}
	if isFile(debianSockJSClient) {
		return debianSockJSClient, nil
	}
	return "", nil
}

func isFile(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular()
}

// staticFile serves one file read at start-up from memory, with the
// validators http.ServeContent derives from its modification time.
type staticFile struct {
	name, contentType string
	body              []byte
	modTime           time.Time
}

func loadStaticFile(path, contentType string) (*staticFile, error) {
	body, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("apps: %w", err)
	}
	if len(body) == 0 {
		return nil, fmt.Errorf("apps: %s: %w", path, errEmptyFile)
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("apps: %w", err)
	}
	return &staticFile{name: filepath.Base(path), contentType: contentType, body: body, modTime: info.ModTime()}, nil
}

var errEmptyFile = errors.New("empty file")

func (f *staticFile) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", f.contentType)
	w.Header().Set("Cache-Control", "public, max-age=3600")
	http.ServeContent(w, r, f.name, f.modTime, bytes.NewReader(f.body))
}

// mountSockJSClient serves the sockjs-client copy opts names or the search
// finds at SockJSClientPath, and makes it the pages' script unless
// opts.SockJSURL names one. It returns the script URL pages should load.
func mountSockJSClient(mux *http.ServeMux, opts Options) (string, error) {
	path, err := FindSockJSClient(opts.SockJSClientFile)
	if err != nil {
		return "", err
	}
	url := opts.SockJSURL
	if path != "" {
		file, err := loadStaticFile(path, "application/javascript; charset=UTF-8")
		if err != nil {
			return "", err
		}
		mux.Handle("GET "+SockJSClientPath, file)
		if url == "" {
			url = SockJSClientPath
		}
	}
	if url == "" {
		url = sockjs.DefaultSockJSURL
	}
	return url, nil
}
