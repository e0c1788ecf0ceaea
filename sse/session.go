package sse

import (
	"net/http"
	"strings"
	"time"

	"github.com/eventsd/eventsd/auth"
)

// createSession serves POST /api/v1/session: it turns the token of the Authorization header
// into the access_token cookie, for a page on another origin whose EventSource cannot send the
// header. The cookie is SameSite=None, so that the browser sends it across sites, and so it
// must be Secure, which a browser keeps only from an HTTPS answer.
func (h *Handler) createSession(w http.ResponseWriter, r *http.Request) {
	if !overHTTPS(r) {
		writeError(w, http.StatusBadRequest, "the session cookie is Secure and SameSite=None: a browser keeps it only over HTTPS; "+
			"call this endpoint over HTTPS, or through a proxy that terminates TLS and sends X-Forwarded-Proto: https", "")
		return
	}
	// The header alone, never a cookie: a session is made from a token the caller holds.
	// With the header present, authenticate reads nothing else.
	if r.Header.Get("Authorization") == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="eventsd"`)
		writeError(w, http.StatusUnauthorized, "no token: send Authorization: Bearer <token>, which the cookie is made of", "")
		return
	}
	id, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	token, _ := auth.BearerToken(r) // authenticate has verified it
	http.SetCookie(w, sessionCookie(token, id.Expires))
	writeJSON(w, http.StatusOK, map[string]string{"user": id.User, "expires": id.Expires.UTC().Format(time.RFC3339)})
}

// deleteSession serves DELETE /api/v1/session: it clears the access_token cookie, the
// partitioned one this endpoint sets and an unpartitioned one (the console's, which the same
// site's pages send too). It needs no token: clearing a cookie grants nothing.
func (h *Handler) deleteSession(w http.ResponseWriter, _ *http.Request) {
	for _, partitioned := range []bool{true, false} {
		c := sessionCookie("", time.Unix(0, 0))
		c.MaxAge = -1 // Max-Age=0: gone now
		c.Partitioned = partitioned
		http.SetCookie(w, c)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// sessionCookie is the access_token cookie holding token until expires. It is cleared with the
// same attributes: a browser replaces a cookie only with one of the same name and path, and a
// Secure one only with a Secure one.
func sessionCookie(token string, expires time.Time) *http.Cookie {
	return &http.Cookie{
		Name:     auth.CookieName,
		Value:    token,
		Path:     "/",
		Expires:  expires,
		HttpOnly: true,
		Secure:   true,
		SameSite: http.SameSiteNoneMode,
		// Kept for the site of the page that asked for it (CHIPS): browsers that block
		// third-party cookies, as Chromium does by default now, keep and send a partitioned
		// one, and a page on another site gets only the cookie it asked for itself.
		Partitioned: true,
	}
}

// overHTTPS reports whether r came over TLS: to this server, or to a proxy in front of it that
// says so. The header is not proof, and needs none: over plain HTTP a browser would drop the
// Secure cookie anyway; the check is there to tell the caller why.
func overHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}
