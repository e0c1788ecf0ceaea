package sse

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-chi/cors"

	"github.com/eventsd/eventsd/auth"
)

// ErrInvalidOrigin is wrapped by the error NewHandler returns for an entry of
// Config.CORSOrigins that is neither "*" nor scheme://host[:port].
var ErrInvalidOrigin = errors.New("sse: invalid CORS origin")

// anyOrigin is the CORSOrigins entry that lets every origin in, without credentials.
const anyOrigin = "*"

// corsMaxAge is how long, in seconds, a browser may keep a preflight's answer.
const corsMaxAge = 600

// CheckCORSOrigins reports the first entry of a Config.CORSOrigins list that NewHandler would
// refuse, in an error that wraps ErrInvalidOrigin and names it.
func CheckCORSOrigins(origins []string) error {
	_, err := corsOrigins(origins)
	return err
}

// corsOrigins checks a CORSOrigins list and returns it as browsers write the Origin header,
// which is compared byte for byte: scheme and host in lower case, no default port.
func corsOrigins(list []string) ([]string, error) {
	out := make([]string, 0, len(list))
	for _, s := range list {
		if s == anyOrigin {
			if len(list) > 1 {
				return nil, fmt.Errorf("%w %q: it allows any origin, so it cannot be listed with others", ErrInvalidOrigin, s)
			}
			return []string{anyOrigin}, nil
		}
		o, err := canonicalOrigin(s)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %v; want \"*\" or scheme://host[:port], like https://app.example.com", ErrInvalidOrigin, s, err)
		}
		out = append(out, o)
	}
	return out, nil
}

// canonicalOrigin returns origin in the form a browser sends it, or why it is not one.
func canonicalOrigin(origin string) (string, error) {
	u, err := url.Parse(origin)
	switch {
	case err != nil:
		return "", errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return "", errors.New("the scheme must be http or https")
	case u.User != nil:
		return "", errors.New("it has user info")
	case u.Path != "" || u.Opaque != "":
		return "", errors.New("it has a path")
	case u.RawQuery != "" || u.ForceQuery:
		return "", errors.New("it has a query")
	case u.Fragment != "" || strings.Contains(origin, "#"):
		return "", errors.New("it has a fragment")
	case !strings.EqualFold(origin, u.Scheme+"://"+u.Host):
		return "", errors.New("it holds more than a scheme, a host and a port")
	}
	host, err := originHost(u.Hostname())
	if err != nil {
		return "", err
	}
	if strings.HasSuffix(u.Host, ":") {
		return "", errors.New("its port is empty")
	}
	port := u.Port()
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("port %s is out of range", port)
		}
		port = strconv.Itoa(n)
		// A browser leaves the scheme's own port out of the Origin header.
		if u.Scheme == "http" && n == 80 || u.Scheme == "https" && n == 443 {
			port = ""
		}
	}
	// JoinHostPort brackets an IPv6 address; without a port, its trailing ":" goes.
	return u.Scheme + "://" + strings.TrimSuffix(net.JoinHostPort(host, port), ":"), nil
}

// originHost checks the host of an origin and returns it in lower case. A "*" in it is
// refused, not taken as a wildcard.
func originHost(host string) (string, error) {
	host = strings.ToLower(host)
	if strings.Contains(host, ":") {
		if net.ParseIP(host) == nil {
			return "", fmt.Errorf("host %q is not an IP address", host)
		}
		return host, nil
	}
	if host == "" || strings.ContainsFunc(host, func(c rune) bool {
		return (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '.' && c != '-'
	}) {
		return "", fmt.Errorf("host %q: want letters, digits, dots and hyphens (a name in its xn-- form)", host)
	}
	return host, nil
}

// corsHandler answers cross-origin requests to the API (paths under /api/) for the handler's
// CORSOrigins, a list that corsOrigins returned: "*" lets any origin in without credentials
// (cookies); listed origins (h.credentialed) are let in, with
// credentials, only when a request's Origin is one of them exactly. Headers go on every answer,
// errors included; a preflight is answered here, 204, and goes no further (to auth, for one).
// A preflight that is refused gets its 204 with no Access-Control-Allow-* header, which
// grants nothing.
func (h *Handler) corsHandler() func(http.Handler) http.Handler {
	origins := h.cfg.CORSOrigins
	opts := cors.Options{
		AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodOptions},
		AllowedHeaders: []string{"Authorization", "Content-Type", "Last-Event-ID", "Idempotency-Key"},
		ExposedHeaders: []string{"Retry-After"},
		MaxAge:         corsMaxAge,
		// The library would answer a preflight 200 itself; passed through, it gets its 204
		// below.
		OptionsPassthrough: true,
	}
	if len(origins) == 1 && origins[0] == anyOrigin {
		opts.AllowedOrigins = origins
	} else {
		// A function rather than AllowedOrigins, which takes a "*" inside an entry as a
		// wildcard and compares regardless of case.
		opts.AllowOriginFunc = func(_ *http.Request, origin string) bool { return h.credentialed[origin] }
		opts.AllowCredentials = true
	}
	c := cors.New(opts)
	return func(next http.Handler) http.Handler {
		api := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isPreflight(r) {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			next.ServeHTTP(w, r)
		}))
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasPrefix(r.URL.Path, "/api/") { // the console, health and metrics stay same-origin
				next.ServeHTTP(w, r)
				return
			}
			api.ServeHTTP(w, r)
		})
	}
}

// isPreflight reports whether r is a CORS preflight, by the test the cors library applies.
func isPreflight(r *http.Request) bool {
	_, origin := r.Header["Origin"]
	return r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" && origin
}

// foreignCookie reports the origin of a request that a browser made from another origin not
// listed for credentials, carrying the access_token cookie and no Authorization header. Such
// a request is refused: the SameSite=None cookie goes with it from any site, so any page the
// user opens could otherwise open streams in the user's name (up to the user's limit, leaving
// the user's own pages none) or publish, even if it cannot read the answers. The browser says
// where a request comes from in Sec-Fetch-Site; one that does not is judged by its Origin,
// against the Host it asked for.
func (h *Handler) foreignCookie(r *http.Request) (string, bool) {
	if r.Header.Get("Authorization") != "" {
		return "", false // a token the caller holds, which no other site can send
	}
	if c, err := r.Cookie(auth.CookieName); err != nil || c.Value == "" {
		return "", false
	}
	origin := r.Header.Get("Origin")
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return "", false
	case "":
		if origin == "" {
			return "", false // not a browser, or a browser's same-origin GET
		}
		if u, err := url.Parse(origin); err == nil && strings.EqualFold(u.Host, r.Host) {
			return "", false
		}
	}
	if h.credentialed[origin] {
		return "", false
	}
	if origin == "" {
		origin = "a request with Sec-Fetch-Site: " + r.Header.Get("Sec-Fetch-Site")
	}
	return origin, true
}
