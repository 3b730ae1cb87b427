package integration

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// labKeepalivedConf is a keepalived.conf as an LVS-DR director of the lab
// would have it: a VRRPv2 instance with PASS authentication holding the
// VIP, and the TCP echo service over both reals with TCP_CHECK.
const labKeepalivedConf = `! keepalived.conf of the lab's director
global_defs {
   router_id LAB_DIRECTOR
}

vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass s3cret
    }
    virtual_ipaddress {
        10.20.0.100
    }
}

virtual_server 10.20.0.100 80 {
    delay_loop 2
    lb_algo rr
    lb_kind DR
    protocol TCP

    real_server 10.20.0.11 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 1
        }
    }
    real_server 10.20.0.12 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
`

// TestImportKeepalived is the importer end to end: an operator's
// keepalived.conf goes through gvsd import-keepalived, gvsd runs on what
// it prints, takes the VIP as VRRP master, and serves connections.
func TestImportKeepalived(t *testing.T) {
	l := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	conf := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(conf, []byte(labKeepalivedConf), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, bins.gvsd, "import-keepalived", conf)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	// Exit 1: something was not carried over (here, the router_id and
	// state lines are comments); anything else is a failure.
	if ee := (*exec.ExitError)(nil); err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		t.Fatalf("gvsd import-keepalived: %v\n%s", err, stderr.String())
	}
	t.Logf("imported:\n%s\nwarnings:\n%s", out, stderr.String())
	for _, want := range []string{"version = 2", `auth_type = "pass"`, `forward = "dr"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the imported TOML lacks %q", want)
		}
	}
	o := scenario.Options{Gvsd: []string{bins.gvsd}, Realserver: []string{bins.realserver}, Dir: dir, Logf: t.Logf}
	env, err := scenario.Setup(ctx, l, config.DR, o, string(out))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		env.Close()
		if t.Failed() {
			t.Logf("gvsd log:\n%s", env.Gvsd.Log())
		}
	}()
	// Master after Master_Down_Interval (about 3.4 s at advert_int 1).
	if err := waitCond(ctx, 15*time.Second, func() bool {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		defer ccancel()
		return request(cctx, l.Client) == nil
	}); err != nil {
		t.Fatalf("no connection through the VIP of the imported configuration: %v", err)
	}
	for range 4 {
		echoOnce(ctx, t, l.Client, l.Client.Addr)
	}
}
