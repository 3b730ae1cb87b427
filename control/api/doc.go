// Package api is the protocol between gvsd and gvsadm: one JSON request
// and one JSON response per connection over gvsd's unix socket
// (/run/gvs/gvsd.sock by default, mode 0600, so root only). It holds the
// message types, the client call and the server loop; gvsadm imports
// nothing else of the project.
package api
