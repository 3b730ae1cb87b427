// Package config owns the gvsd configuration file: its TOML schema (TOML v1.0.0,
// https://toml.io/en/v1.0.0), its defaults, and its validation against the rules of
// ipvsadm(8) — the services, real servers, schedulers and forwarding methods of Linux
// Virtual Server.
//
// Config flows one way: [Parse] decodes the TOML into a generic tree, walks it against
// the schema (so an unknown key is reported with its full path, e.g.
// `service[0].real[1].wieght`), fills the defaults, resolves what the file leaves implicit
// (a real's forwarding method and a real port of 0), and then [Validate]s the result.
// Every problem is reported at once, each with its field path, as [Errors]. The caller
// (the control plane) compiles the returned [Config] into a dataplane snapshot.
//
// This is the only package of the project that imports the TOML library.
package config
