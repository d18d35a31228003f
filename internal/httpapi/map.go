package httpapi

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/geosearch/search/internal/geo"
)

// assets are the map page and Leaflet 1.9.4, vendored from npm (see
// assets/leaflet/LICENSE; TestVendoredLeafletMatchesNPM checks the files
// against the package pinned in testdata/browser/package.json).
//
//go:embed assets
var assets embed.FS

var mapTemplate = template.Must(template.ParseFS(assets, "assets/map.html"))

// started is when the assets' Last-Modified says they changed: they are
// in the binary, so they change with it.
var started = time.Now()

// mapPage serves the map: the page itself, with the basemap settings in
// data attributes (no inline script, so the CSP can forbid it).
func (s *Server) mapPage(w http.ResponseWriter, r *http.Request) error {
	if err := checkParams(r); err != nil {
		return err
	}
	var b bytes.Buffer
	if err := mapTemplate.Execute(&b, map[string]string{"TileURL": s.cfg.MapTileURL, "TileAttribution": s.cfg.MapTileAttribution}); err != nil {
		return err
	}
	img := "'self' data:"
	if origin := tileOrigin(s.cfg.MapTileURL); origin != "" {
		img += " " + origin
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src "+img+"; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	_, err := w.Write(b.Bytes())
	return err
}

// tileOrigin is the origin of a tile URL template for the CSP, with
// Leaflet's {s} subdomain placeholder as a wildcard; "" if there is none.
func tileOrigin(template string) string {
	scheme, rest, ok := strings.Cut(template, "://")
	if !ok || (scheme != "http" && scheme != "https") {
		return ""
	}
	host, _, _ := strings.Cut(rest, "/")
	host = strings.ReplaceAll(host, "{s}", "*")
	if host == "" || strings.ContainsAny(host, "{}; '\"") {
		return ""
	}
	return scheme + "://" + host
}

// mapAssets serves the map's files under /map/: its script and style and
// Leaflet's. Directories are not listed.
func (s *Server) mapAssets(w http.ResponseWriter, r *http.Request) error {
	name := strings.TrimPrefix(r.URL.Path, "/map/")
	if name == "" || name == "map.html" || !fs.ValidPath(name) {
		return errNotFoundPath(r.URL.Path)
	}
	b, err := fs.ReadFile(assets, "assets/"+name)
	if err != nil {
		return errNotFoundPath(r.URL.Path)
	}
	ctype := mime.TypeByExtension(path.Ext(name))
	if path.Base(name) == "LICENSE" {
		ctype = "text/plain; charset=utf-8"
	}
	if ctype == "" {
		return geo.Errorf(geo.NotFound, "there is no resource at %s", r.URL.Path)
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	http.ServeContent(w, r, name, started, bytes.NewReader(b))
	return nil
}
