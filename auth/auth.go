// Package auth verifies and mints the HS256 JSON Web Tokens that say who a caller is: "sub" is
// the user id, "exp" is required, and "roles" may hold "admin" and "service".
package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
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

// Identity is who a verified token speaks for.
type Identity struct {
	User  string
	Roles []string
}

// Has reports whether the identity holds role.
func (id Identity) Has(role string) bool { return slices.Contains(id.Roles, role) }

// Privileged reports whether the identity may act for other users (admin or service).
func (id Identity) Privileged() bool { return id.Has(RoleAdmin) || id.Has(RoleService) }

type claims struct {
	jwt.RegisteredClaims
	Roles []string `json:"roles,omitempty"`
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
	return Identity{User: c.Subject, Roles: c.Roles}, nil
}

// VerifyRequest verifies the token of r: the Authorization Bearer header, else the access_token
// cookie.
func (v *Verifier) VerifyRequest(r *http.Request) (Identity, error) {
	token := ""
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(rest) == "" {
			return Identity{}, fmt.Errorf("%w: Authorization header is not \"Bearer <token>\"", ErrInvalidToken)
		}
		token = strings.TrimSpace(rest)
	} else if c, err := r.Cookie("access_token"); err == nil {
		token = c.Value
	}
	if token == "" {
		return Identity{}, ErrNoToken
	}
	return v.Verify(token)
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
	b, err := os.ReadFile(filepath.Join(dataDir, SecretFile))
	if err != nil {
		return nil, fmt.Errorf("auth: read secret: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil, fmt.Errorf("auth: secret file %s is empty", filepath.Join(dataDir, SecretFile))
	}
	return []byte(s), nil
}

// LoadOrCreateSecret reads the secret in dataDir, generating a random one (mode 0600) on first
// use.
func LoadOrCreateSecret(dataDir string) ([]byte, error) {
	if s, err := LoadSecret(dataDir); err == nil || !errors.Is(err, os.ErrNotExist) {
		return s, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	s := hex.EncodeToString(raw)
	path := filepath.Join(dataDir, SecretFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) { // another process won the race
			return LoadSecret(dataDir)
		}
		return nil, fmt.Errorf("auth: create secret: %w", err)
	}
	_, err = f.WriteString(s + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("auth: write secret: %w", err)
	}
	return []byte(s), nil
}
