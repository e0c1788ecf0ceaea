package auth_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
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

// TestMintVerify: a minted token comes back with its user and roles.
func TestMintVerify(t *testing.T) {
	tok, err := auth.Mint(secret, "alice", []string{auth.RoleService}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	id, err := auth.NewVerifier(secret).Verify(tok)
	if err != nil || id.User != "alice" || !id.Has(auth.RoleService) || id.Has(auth.RoleAdmin) {
		t.Fatalf("Verify(Mint(alice, service)) = %+v, %v", id, err)
	}
}
