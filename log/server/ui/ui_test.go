package ui

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestAssetsAreSelfContained serves the page and follows every asset it
// names (script and style references, module imports): each must be
// served from the binary with the type a browser requires of it, and
// nothing may load from another origin (no CDN, no external fonts or
// scripts).
func TestAssetsAreSelfContained(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	get := func(path string) (string, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		return string(b), resp.Header.Get("Content-Type")
	}
	html, ctype := get("/")
	if !strings.HasPrefix(ctype, "text/html") {
		t.Errorf("GET /: Content-Type %q", ctype)
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"#]+)"|import[^'"]*from '([^']+)'|url\(([^)]+)\)`)
	wantType := map[string]string{".js": "text/javascript", ".css": "text/css"}
	queue, seen := []string{"/"}, map[string]bool{"/": true}
	bodies := map[string]string{"/": html}
	for len(queue) > 0 {
		page := queue[0]
		queue = queue[1:]
		for _, m := range refs.FindAllStringSubmatch(bodies[page], -1) {
			ref := m[1] + m[2] + m[3]
			if strings.Contains(ref, "//") || strings.HasPrefix(ref, "data:") {
				t.Errorf("%s references %q: assets must come from the binary", page, ref)
				continue
			}
			if strings.HasPrefix(ref, "./") {
				ref = "/ui/" + ref[2:]
			}
			if seen[ref] {
				continue
			}
			seen[ref] = true
			body, ctype := get(ref)
			for ext, want := range wantType {
				if strings.HasSuffix(ref, ext) && !strings.HasPrefix(ctype, want) {
					t.Errorf("GET %s: Content-Type %q, want %s", ref, ctype, want)
				}
			}
			bodies[ref] = body
			queue = append(queue, ref)
		}
	}
	for _, f := range []string{"/ui/app.js", "/ui/verify.js", "/ui/events.js", "/ui/style.css"} {
		if !seen[f] {
			t.Errorf("the page does not load %s", f)
		}
	}
	// Every embedded asset is used: none is left over.
	sub, _ := fs.Sub(assets, "assets")
	fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if !d.IsDir() && p != "index.html" && !seen["/ui/"+p] {
			t.Errorf("asset %s is embedded but the page never loads it", p)
		}
		return nil
	})
}
