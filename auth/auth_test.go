package auth_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/eventsd/eventsd/auth"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

// sign makes an HS256 token of the claims JSON as written, so a test controls every byte of it.
func sign(claims string) string {
	enc := base64.RawURLEncoding
	unsigned := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(claims))
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(unsigned))
	return unsigned + "." + enc.EncodeToString(mac.Sum(nil))
}

// TestRolesClaimIsExact: only "roles" grants a role; encoding/json alone would take "Roles" or
// "ROLES" for it.
func TestRolesClaimIsExact(t *testing.T) {
	exp := time.Now().Add(time.Hour).Unix()
	for _, tc := range []struct {
		name  string
		extra string
		want  []string
	}{
		{"roles", `"roles":["admin"]`, []string{"admin"}},
		{"Roles", `"Roles":["admin"]`, nil},
		{"ROLES", `"ROLES":["admin","service"]`, nil},
		{"Roles then roles", `"Roles":["admin"],"roles":["service"]`, []string{"service"}},
		{"roles then Roles", `"roles":["service"],"Roles":["admin"]`, []string{"service"}},
		{"none", `"other":1`, nil},
		{"null", `"roles":null`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := sign(fmt.Sprintf(`{"sub":"mallory","exp":%d,%s}`, exp, tc.extra))
			id, err := auth.NewVerifier(secret).Verify(tok)
			if err != nil {
				t.Fatalf("Verify(%s): %v", tc.extra, err)
			}
			if id.User != "mallory" || !slices.Equal(id.Roles, tc.want) {
				t.Fatalf("Verify(%s) = %+v, want user mallory with roles %q", tc.extra, id, tc.want)
			}
			if got := id.Privileged(); got != (len(tc.want) > 0) {
				t.Fatalf("Verify(%s).Privileged() = %v", tc.extra, got)
			}
		})
	}
}

// TestRegisteredClaimsStillChecked: the exact reading of "roles" keeps the checks of "exp" and
// "sub".
func TestRegisteredClaimsStillChecked(t *testing.T) {
	for _, tc := range []struct {
		name   string
		claims string
	}{
		{"expired", fmt.Sprintf(`{"sub":"alice","exp":%d,"roles":["admin"]}`, time.Now().Add(-time.Hour).Unix())},
		{"no exp", `{"sub":"alice","roles":["admin"]}`},
		{"no sub", fmt.Sprintf(`{"exp":%d,"roles":["admin"]}`, time.Now().Add(time.Hour).Unix())},
		{"roles not a list", fmt.Sprintf(`{"sub":"alice","exp":%d,"roles":"admin"}`, time.Now().Add(time.Hour).Unix())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if id, err := auth.NewVerifier(secret).Verify(sign(tc.claims)); err == nil {
				t.Fatalf("Verify(%s) = %+v, want an error", tc.claims, id)
			}
		})
	}
}

// TestMintVerify: a minted token comes back with its user, roles and expiry.
func TestMintVerify(t *testing.T) {
	before := time.Now().Truncate(time.Second)
	tok, err := auth.Mint(secret, "alice", []string{auth.RoleService}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	id, err := auth.NewVerifier(secret).Verify(tok)
	if err != nil || id.User != "alice" || !id.Has(auth.RoleService) || id.Has(auth.RoleAdmin) {
		t.Fatalf("Verify(Mint(alice, service)) = %+v, %v", id, err)
	}
	if id.Expires.Before(before.Add(time.Minute)) || id.Expires.After(time.Now().Add(time.Minute)) {
		t.Fatalf("Verify(Mint(ttl 1m)).Expires = %s, want a minute from %s", id.Expires, before)
	}
}

// TestVerifyRequest: the Authorization header wins over the cookie, even when it is bad;
// BearerToken reads the header alone.
func TestVerifyRequest(t *testing.T) {
	alice, err := auth.Mint(secret, "alice", nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := auth.Mint(secret, "bob", nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, header, cookie string
		bearer               error // of BearerToken
		user                 string
		err                  error // of VerifyRequest
	}{
		{"header", "Bearer " + alice, "", nil, "alice", nil},
		{"lower-case scheme", "bearer " + alice, "", nil, "alice", nil},
		{"cookie", "", bob, auth.ErrNoToken, "bob", nil},
		{"header over cookie", "Bearer " + alice, bob, nil, "alice", nil},
		{"bad header over cookie", "Basic YWxpY2U6eA==", bob, auth.ErrInvalidToken, "", auth.ErrInvalidToken},
		{"empty bearer", "Bearer  ", bob, auth.ErrInvalidToken, "", auth.ErrInvalidToken},
		{"empty cookie", "", "", auth.ErrNoToken, "", auth.ErrNoToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			r.AddCookie(&http.Cookie{Name: auth.CookieName, Value: tc.cookie})
			if tok, err := auth.BearerToken(r); !errors.Is(err, tc.bearer) || (err == nil && tok != alice) {
				t.Errorf("BearerToken = %.10q, %v; want %v", tok, err, tc.bearer)
			}
			id, err := auth.NewVerifier(secret).VerifyRequest(r)
			if !errors.Is(err, tc.err) || id.User != tc.user {
				t.Errorf("VerifyRequest = %q, %v; want %q, %v", id.User, err, tc.user, tc.err)
			}
		})
	}
}

// TestVerifyRequestTwoCookies: a browser that holds the console's cookie and the partitioned
// session cookie sends both, oldest first; the first that verifies counts.
func TestVerifyRequestTwoCookies(t *testing.T) {
	expired := sign(fmt.Sprintf(`{"sub":"admin","exp":%d}`, time.Now().Add(-time.Hour).Unix()))
	alice, err := auth.Mint(secret, "alice", nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		cookies []string
		user    string
		err     error
	}{
		{"an expired one before a good one", []string{expired, alice}, "alice", nil},
		{"a good one before an expired one", []string{alice, expired}, "alice", nil},
		{"only expired ones", []string{expired, expired}, "", auth.ErrInvalidToken},
		{"garbage, then a good one", []string{"x.y.z", alice}, "alice", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			for _, c := range tc.cookies {
				r.AddCookie(&http.Cookie{Name: auth.CookieName, Value: c})
			}
			id, err := auth.NewVerifier(secret).VerifyRequest(r)
			if !errors.Is(err, tc.err) || id.User != tc.user {
				t.Errorf("VerifyRequest = %q, %v; want %q, %v", id.User, err, tc.user, tc.err)
			}
		})
	}
}
