package release

import (
	"crypto/ed25519"
	"encoding/pem"
)

// Key file PEM block types. A private key file holds the 32-byte Ed25519
// seed; a public key file holds the 32-byte public key. The role header
// ("root" or "signing") tells the operator what the key is for.
const (
	pemPrivate = "RAP RELEASE PRIVATE KEY"
	pemPublic  = "RAP RELEASE PUBLIC KEY"
)

// Key roles written into key files.
const (
	RoleRoot    = "root"
	RoleSigning = "signing"
)

// MarshalPrivateKey returns the PEM file form of a private key. The caller
// writes it with mode 0600 and never prints it.
func MarshalPrivateKey(role string, key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize || (role != RoleRoot && role != RoleSigning) {
		return nil, rerr(ErrInvalid, "private key: role %q, %d bytes", role, len(key))
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivate, Headers: map[string]string{
		"Role": role, "Key-Id": KeyID(key.Public().(ed25519.PublicKey)),
	}, Bytes: key.Seed()}), nil
}

// ParsePrivateKey parses a private key file and returns the role and key.
func ParsePrivateKey(b []byte) (string, ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != pemPrivate || len(blk.Bytes) != ed25519.SeedSize {
		return "", nil, rerr(ErrMalformed, "not a release private key file")
	}
	role := blk.Headers["Role"]
	if role != RoleRoot && role != RoleSigning {
		return "", nil, rerr(ErrMalformed, "private key role %q", role)
	}
	return role, ed25519.NewKeyFromSeed(blk.Bytes), nil
}

// MarshalPublicKey returns the PEM file form of a public key.
func MarshalPublicKey(role string, pub ed25519.PublicKey) ([]byte, error) {
	if len(pub) != ed25519.PublicKeySize || (role != RoleRoot && role != RoleSigning) {
		return nil, rerr(ErrInvalid, "public key: role %q, %d bytes", role, len(pub))
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublic, Headers: map[string]string{
		"Role": role, "Key-Id": KeyID(pub),
	}, Bytes: pub}), nil
}

// ParsePublicKey parses a public key file and returns the role and key.
func ParsePublicKey(b []byte) (string, ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != pemPublic || len(blk.Bytes) != ed25519.PublicKeySize {
		return "", nil, rerr(ErrMalformed, "not a release public key file")
	}
	role := blk.Headers["Role"]
	if role != RoleRoot && role != RoleSigning {
		return "", nil, rerr(ErrMalformed, "public key role %q", role)
	}
	return role, ed25519.PublicKey(blk.Bytes), nil
}
