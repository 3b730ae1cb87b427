package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that Parse never panics, returns a config or *Errors but not both,
// that every problem has a message, and that whatever it accepts passes Validate.
func FuzzParse(f *testing.F) {
	// Seeds: every example config, and the corners of the schema.
	files, _ := filepath.Glob("../../configs/*.toml")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		"",                     // no director
		head,                   // smallest valid file
		"a = = 1",              // syntax error
		"service = [1, \"x\"]", // array elements of the wrong type
		"director = []",        // array where a table belongs
		head + "[[service]]\naddress = \"10.0.0.1:80\"\n[[service.real]]\naddress = \"10.0.0.2:0\"\n",              // port resolution
		head + "[[service]]\naddress = \"[::1]:80\"\nforward = \"x\"\n[[service.real]]\naddress = \"1.1.1.1:1\"\n", // bad values that others derive from
		head + "[[service]]\nname = \"tcp/1.1.1.1:1\"\nprotocol = \"udp\"\naddress = \"1.1.1.1:1\"\n[[service]]\naddress = \"1.1.1.1:1\"\n",
		head + "local_addresses = [\"1.1.1.1\", 1, \"1.1.1.1\"]\nlocal_ports = \"65535-65535\"\n",
		"[timeouts]\ntcp = 1979-05-27T07:32:00Z\n", // datetime value
		"\"\\u0000\" = 1", // a key that needs quoting
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if c != nil {
				t.Fatal("Parse returned a config and an error")
			}
			var errs *Errors
			if !errors.As(err, &errs) || len(*errs) == 0 {
				t.Fatalf("error %T %v is not a non-empty *Errors", err, err)
			}
			for _, fe := range *errs {
				if fe.Msg == "" {
					t.Fatalf("problem at %q without a message", fe.Path)
				}
			}
			return
		}
		if c == nil {
			t.Fatal("Parse returned neither a config nor an error")
		}
		if err := Validate(c); err != nil {
			t.Fatalf("Parse accepted what Validate rejects:\n%v", err)
		}
		for _, s := range c.Services {
			for _, r := range s.Reals {
				if r.Address.Port() == 0 || !r.Forward.valid() {
					t.Fatalf("unresolved real %+v", r)
				}
			}
		}
	})
}
