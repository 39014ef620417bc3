// Package web serves Tally's page: plain HTML, CSS and JavaScript embedded
// in the binary, which talk to the REST API and the live socket like any
// other client.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"regexp"

	"github.com/gin-gonic/gin"
)

//go:embed static
var static embed.FS

// pageCSP is the page's Content-Security-Policy: scripts, styles, workers
// and fetches only from this origin, no inline script or style markup, no
// plugins, no framing. The API's own answers keep their stricter
// default-src 'none' (set by httpapi's securityHeaders before this runs).
// The embed widget's differs only in frame-ancestors (see embedCSP).
const pageCSP = pageCSPHead + "frame-ancestors 'none'; connect-src 'self'"

// pageCSPHead is the page's CSP up to frame-ancestors.
const pageCSPHead = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"worker-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "

// hostRE is what a Host header must look like before it is written into
// the CSP's connect-src: a name or address and a port, nothing that could
// end the directive.
var hostRE = regexp.MustCompile(`^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$`)

// Routes are the page's route templates, which are not API operations (the
// OpenAPI document leaves them out).
var Routes = []string{"/", "/p/:poll_id", "/assets/*path", EmbedRoute}

// Register mounts the page on r: "/" (sign in, create a poll, my polls),
// "/p/:poll_id" (the share page: vote and watch the results) and the
// assets under "/assets/".
func Register(r gin.IRoutes) error {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		return err
	}
	index, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		return err
	}
	page := func(c *gin.Context) {
		pageHeaders(c)
		c.Header("Cache-Control", "no-cache")
		c.Data(http.StatusOK, "text/html; charset=utf-8", index)
	}
	r.GET("/", page)
	r.GET("/p/:poll_id", page)
	files := http.StripPrefix("/assets/", http.FileServerFS(sub))
	r.GET("/assets/*path", func(c *gin.Context) {
		if p := c.Param("path"); p == "/index.html" || p == "/embed.html" || p == "/" {
			// The HTML files are pages, not assets (embed.html needs its
			// poll's CSP); FileServer would also redirect them and list
			// the directory.
			c.Status(http.StatusNotFound)
			return
		}
		pageHeaders(c)
		c.Header("Cache-Control", "no-cache")
		files.ServeHTTP(c.Writer, c.Request)
	})
	return nil
}

// pageHeaders replaces the API's CSP with the page's. connect-src names
// the socket scheme of this host too: CSP level 3 counts ws: of the page's
// own origin as 'self', but older browsers do not.
func pageHeaders(c *gin.Context) {
	setCSP(c, pageCSP)
}

// setCSP sets csp, with this host's socket sources added to connect-src
// (the directive it ends with), and the opener policy.
func setCSP(c *gin.Context, csp string) {
	if host := c.Request.Host; hostRE.MatchString(host) {
		csp += " ws://" + host + " wss://" + host
	}
	c.Header("Content-Security-Policy", csp)
	c.Header("Cross-Origin-Opener-Policy", "same-origin")
}
