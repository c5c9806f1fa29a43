// Package ui is the auditor's web page that provlogd serves on its HTTP
// port: GET / is the page, GET /ui/<file> its assets. Everything is
// embedded in the binary (go:embed), with no external fonts, scripts or
// build step; the page reads the log through the JSON read API
// (/api/v1/…) and the tlog-tiles endpoints, and verifies proofs and the
// checkpoint's signature in the browser.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

// Handler serves the page at / and its assets under /ui/.
func Handler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree always has assets/
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, sub, "index.html")
	})
	mux.Handle("GET /ui/", files)
	return mux
}
