// Added to sigs.k8s.io/kwok's pkg/kwok/server by tools/build-go-components.sh (a build-time
// overlay; nothing of kwok's own source is kept in this repository). The embedded target's kwok
// serves the kubelet API (exec, logs) only to clients with a certificate from the environment's
// CA, as a kubelet does (kube-apiserver presents its kubelet client certificate): its TLS server
// requires one, and plain HTTP on the same port is refused.
package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
)

// irsaClientAuth is the TLS configuration of the kubelet endpoint: client certificates of the CA
// in IRSA_KWOK_CLIENT_CA_FILE required. Without that file kwok does not serve at all.
func irsaClientAuth() *tls.Config {
	file := os.Getenv("IRSA_KWOK_CLIENT_CA_FILE")
	pem, err := os.ReadFile(file)
	pool := x509.NewCertPool()
	if file == "" || err != nil || !pool.AppendCertsFromPEM(pem) {
		fmt.Fprintf(os.Stderr, "kwok (irsa-conformance build): IRSA_KWOK_CLIENT_CA_FILE must name the PEM CA of the clients to accept (%q: %v)\n", file, err)
		os.Exit(2)
	}
	// kwok's environment is the base of every command it execs for a pod: not this.
	_ = os.Unsetenv("IRSA_KWOK_CLIENT_CA_FILE")
	return &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12}
}

// irsaPlainRefused answers plain HTTP on the kubelet port: 403, nothing served.
func irsaPlainRefused() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "kwok (irsa-conformance build) serves only TLS with a client certificate", http.StatusForbidden)
	})
}
