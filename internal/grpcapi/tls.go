package grpcapi

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// TLSEnabled reports whether the server serves TLS (TLS_CERT_FILE is set).
func (c Config) TLSEnabled() bool { return c.TLSCertFile != "" }

func (c Config) validateTLS() []error {
	var errs []error
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("TLS_CERT_FILE and TLS_KEY_FILE must be set together"))
	}
	if c.TLSClientCAFile != "" && c.TLSCertFile == "" {
		errs = append(errs, errors.New("TLS_CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE: client certificates are checked only over TLS"))
	}
	return errs
}

// ServerCredentials returns the TLS credentials of cfg, or nil when TLS is
// off. With TLS_CLIENT_CA_FILE, every client must present a certificate
// signed by one of its CAs. Files are read once: rotating a certificate is
// a restart, which the shutdown handover makes invisible to clients.
func ServerCredentials(cfg Config) (credentials.TransportCredentials, error) {
	tc, err := ServerTLSConfig(cfg)
	if err != nil || tc == nil {
		return nil, err
	}
	return credentials.NewTLS(tc), nil
}

// ServerTLSConfig returns the TLS configuration of cfg, or nil when TLS is
// off: the one the gRPC server uses, and that the HTTP API shares.
func ServerTLSConfig(cfg Config) (*tls.Config, error) {
	if !cfg.TLSEnabled() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS_CERT_FILE/TLS_KEY_FILE: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.TLSClientCAFile != "" {
		pool, err := loadCertPool(cfg.TLSClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS_CLIENT_CA_FILE: %w", err)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// ClientTLS is how a client verifies the server and, for mutual TLS,
// identifies itself.
type ClientTLS struct {
	// CAFile holds the CAs that may sign the server's certificate; empty
	// means the system's roots.
	CAFile string
	// ServerName is the name the server's certificate must carry; empty
	// means the host of the address dialled.
	ServerName string
	// CertFile and KeyFile are the client's certificate, for servers that
	// ask for one (TLS_CLIENT_CA_FILE).
	CertFile, KeyFile string
}

// Credentials returns the client's TLS credentials. The server is always
// verified: there is no option to skip it.
func (c ClientTLS) Credentials() (credentials.TransportCredentials, error) {
	tc := &tls.Config{ServerName: c.ServerName, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pool, err := loadCertPool(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		tc.RootCAs = pool
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("a client certificate needs both its certificate and its key file")
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(tc), nil
}

// DialOptions returns the options of a client that verifies the server
// with c and, when token is set, sends it as a bearer token.
func (c ClientTLS) DialOptions(token string) ([]grpc.DialOption, error) {
	creds, err := c.Credentials()
	if err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(BearerToken(token)))
	}
	return opts, nil
}

func loadCertPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}
