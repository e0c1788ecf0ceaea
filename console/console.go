// Package console serves the web console: a page, from assets built into the binary, that
// follows the caller's channels live, filters and inspects events, resumes after a dropped
// connection, and publishes test events.
package console

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

// Handler serves the console's files; "/" is the page.
func Handler() http.Handler {
	sub, _ := fs.Sub(assets, "assets") // the directory is embedded, so it exists
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// frame-ancestors: no other site may frame the console and trick a signed-in user
		// into clicking its publish form.
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}
