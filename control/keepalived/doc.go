// Package keepalived owns the translation of a keepalived configuration
// (keepalived.conf(5), https://keepalived.org/manpage.html) into the gvs TOML
// configuration of control/config: `gvsd import-keepalived FILE`.
//
// [Import] reads the file in keepalived's own grammar — `keyword value...`
// lines, `{ }` blocks that may open on the keyword's line or the next, `!` and
// `#` comments outside double quotes, double-quoted words, and `include GLOB`
// spliced in where it stands, relative to the including file's directory —
// then maps global_defs, the first vrrp_instance, virtual_server_group and
// virtual_server blocks onto [director], [timeouts], [vrrp], [sync],
// [[service]], [service.check] and [[service.real]]. Whatever gvs cannot
// express is returned as a [Warning] naming its file and line, never dropped
// silently; a malformed file (an unbalanced brace, an unterminated quote, an
// include that cannot be read) is a *[SyntaxError].
//
// The output is built to pass control/config's validation: a value that gvs
// would refuse is changed (with a warning saying to what) or left out (with a
// warning), so that the TOML always loads.
package keepalived
