// Package auth verifies and mints the HS256 JSON Web Tokens that say who a caller is: "sub" is
// the user id, "exp" is required, and "roles" may hold "admin" and "service".
package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventsd/eventsd/internal/datadir"
)

// Roles a token may carry.
const (
	RoleAdmin   = "admin"
	RoleService = "service"
)

// Sentinel errors.
var (
	// ErrNoToken is returned when a request carries no token.
	ErrNoToken = errors.New("auth: no token")
	// ErrInvalidToken is returned for a token that is malformed, wrongly signed, expired or not
	// yet valid.
	ErrInvalidToken = errors.New("auth: invalid token")
)

// SecretFile is the name of the generated secret inside the data directory.
const SecretFile = "jwt-secret"

// CookieName is the cookie that carries a token where no Authorization header can (a
// browser's EventSource).
const CookieName = "access_token"

// Identity is who a verified token speaks for.
type Identity struct {
	User  string
	Roles []string
	// Expires is when the token stops being valid.
	Expires time.Time
}

// Has reports whether the identity holds role.
func (id Identity) Has(role string) bool { return slices.Contains(id.Roles, role) }

// Privileged reports whether the identity may act for other users (admin or service).
func (id Identity) Privileged() bool { return id.Has(RoleAdmin) || id.Has(RoleService) }

type claims struct {
	jwt.RegisteredClaims
	Roles []string `json:"roles,omitempty"`
}

// UnmarshalJSON reads "roles" by its exact name: encoding/json matches names regardless of
// case, which would let "Roles" or "ROLES" grant a role that a token's issuer did not mean as
// one.
func (c *claims) UnmarshalJSON(b []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	if err := json.Unmarshal(b, &c.RegisteredClaims); err != nil {
		return err
	}
	c.Roles = nil
	if roles, ok := fields["roles"]; ok {
		return json.Unmarshal(roles, &c.Roles)
	}
	return nil
}

// Verifier checks tokens signed with one secret.
type Verifier struct {
	secret []byte
	parser *jwt.Parser
}

// NewVerifier returns a Verifier for secret.
func NewVerifier(secret []byte) *Verifier {
	return &Verifier{
		secret: secret,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
		),
	}
}

// Verify checks token and returns its identity.
func (v *Verifier) Verify(token string) (Identity, error) {
	var c claims
	_, err := v.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return v.secret, nil })
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if c.Subject == "" {
		return Identity{}, fmt.Errorf("%w: no subject", ErrInvalidToken)
	}
	return Identity{User: c.Subject, Roles: c.Roles, Expires: c.ExpiresAt.Time}, nil
}

// VerifyRequest verifies the token of r: the Authorization Bearer header, else the access_token
// cookie. A browser may send two such cookies (the console's own, and the partitioned one of
// POST /api/v1/session): the first that verifies counts, so that an expired one does not hide a
// good one; with none that verifies, the first one's error is returned.
func (v *Verifier) VerifyRequest(r *http.Request) (Identity, error) {
	token, err := BearerToken(r)
	if err == nil {
		return v.Verify(token)
	}
	if !errors.Is(err, ErrNoToken) {
		return Identity{}, err
	}
	var first error
	for _, c := range r.CookiesNamed(CookieName) {
		if c.Value == "" {
			continue
		}
		id, err := v.Verify(c.Value)
		if err == nil {
			return id, nil
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		first = ErrNoToken
	}
	return Identity{}, first
}

// BearerToken returns the token of r's Authorization header, unverified: ErrNoToken without
// the header, ErrInvalidToken when it is not "Bearer <token>".
func BearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", ErrNoToken
	}
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(rest) == "" {
		return "", fmt.Errorf("%w: Authorization header is not \"Bearer <token>\"", ErrInvalidToken)
	}
	return strings.TrimSpace(rest), nil
}

// Mint returns a token for user with roles, valid for ttl.
func Mint(secret []byte, user string, roles []string, ttl time.Duration) (string, error) {
	if user == "" {
		return "", errors.New("auth: mint: empty user")
	}
	if ttl <= 0 {
		return "", fmt.Errorf("auth: mint: ttl %s is not positive", ttl)
	}
	for _, r := range roles {
		if r != RoleAdmin && r != RoleService {
			return "", fmt.Errorf("auth: mint: unknown role %q: want %s or %s", r, RoleAdmin, RoleService)
		}
	}
	now := time.Now()
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   user,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Roles: roles,
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

// LoadSecret reads the secret generated in dataDir.
func LoadSecret(dataDir string) ([]byte, error) {
	s, err := datadir.Read(dataDir, SecretFile)
	if err != nil {
		return nil, err // it names the file
	}
	return []byte(s), nil
}

// LoadOrCreateSecret reads the secret in dataDir, generating a random one (mode 0600) on first
// use.
func LoadOrCreateSecret(dataDir string) ([]byte, error) {
	s, err := datadir.ReadOrCreate(dataDir, SecretFile)
	if err != nil {
		return nil, err // it names the file
	}
	return []byte(s), nil
}
