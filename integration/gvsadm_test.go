package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// TestGvsadm lists a running gvsd the way an ipvsadm user would: after
// three connections through a DR service, -Ln shows the service and both
// reals with their connection counts, --stats the traffic, -c the
// connection table and -S rules ipvsadm -R reads; the socket is root's
// only, and a missing gvsd is reported as such.
func TestGvsadm(t *testing.T) {
	l := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o := scenario.Options{Gvsd: []string{bins.gvsd}, Realserver: []string{bins.realserver}, Dir: t.TempDir(), Logf: t.Logf}
	env, err := scenario.Setup(ctx, l, config.DR, o, drConfig(l, "rr", "persistence = \"0s\"", []int{1, 2}, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	gvsadm := func(args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.CommandContext(ctx, bins.gvsadm, append([]string{"--socket", env.SocketPath}, args...)...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("gvsadm %v: %v", args, err)
		}
		return out.String(), errb.String(), code
	}

	if fi, err := os.Stat(env.SocketPath); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("control socket %s: %v, mode %v; want a socket with mode 0600", env.SocketPath, err, fi.Mode())
	}
	for range 3 {
		echoOnce(ctx, t, l.Client, l.Client.Addr)
	}

	out, errs, code := gvsadm("-Ln")
	if code != 0 {
		t.Fatalf("gvsadm -Ln: exit %d: %s", code, errs)
	}
	lines := strings.Split(out, "\n")
	want := []string{
		"IP Virtual Server version 1.2.1 (size=4000000)",
		"Prot LocalAddress:Port Scheduler Flags",
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
		"TCP  10.20.0.100:80 rr",
	}
	for i, w := range want {
		if i >= len(lines) || lines[i] != w {
			t.Fatalf("gvsadm -Ln line %d: %q, want %q\n%s", i+1, at(lines, i), w, out)
		}
	}
	// "  -> %-28s %-7s %-6d %-10d %-10d": the reals, weights 1 and 2, and
	// three connections between them.
	realLine := regexp.MustCompile(`^  -> (\S+) +Route   (\d) {6}(\d+) +(\d+) +$`)
	conns := 0
	for i, r := range l.Reals {
		m := realLine.FindStringSubmatch(at(lines, 4+i))
		if m == nil || m[1] != r.Addr.String()+":80" || m[2] != strconv.Itoa(i+1) || len(at(lines, 4+i)) != 5+28+1+7+1+6+1+10+1+10 {
			t.Fatalf("gvsadm -Ln real line %q, want ipvsadm's columns for %s weight %d\n%s", at(lines, 4+i), r.Addr, i+1, out)
		}
		a, _ := strconv.Atoi(m[3])
		b, _ := strconv.Atoi(m[4])
		conns += a + b
	}
	if conns != 3 {
		t.Errorf("ActiveConn + InActConn over the reals = %d, want 3:\n%s", conns, out)
	}

	out, _, _ = gvsadm("-L", "-n", "--stats")
	t.Logf("gvsadm -Ln --stats:\n%s", out)
	statLine := regexp.MustCompile(`(?m)^TCP  10\.20\.0\.100:80 {17}( +\d+){5}$`)
	if m := statLine.FindString(out); m == "" || !strings.HasPrefix(strings.TrimSpace(m[33:]), "3 ") {
		t.Errorf("gvsadm -Ln --stats: want the service line with Conns 3 in ipvsadm's columns:\n%s", out)
	}

	out, _, _ = gvsadm("-Lnc")
	t.Logf("gvsadm -Lnc:\n%s", out)
	entries := regexp.MustCompile(`(?m)^TCP \d\d:\d\d  \S+ +10\.10\.0\.2:\d+ +10\.20\.0\.100:80 +10\.20\.0\.1[12]:80$`).FindAllString(out, -1)
	if !strings.HasPrefix(out, "IPVS connection entries\npro expire state       source             virtual            destination\n") || len(entries) < 3 {
		t.Errorf("gvsadm -Lnc: want the header and at least 3 entries of the client, got %d:\n%s", len(entries), out)
	}

	out, _, _ = gvsadm("-Sn")
	for _, w := range []string{"-A -t 10.20.0.100:80 -s rr\n", "-a -t 10.20.0.100:80 -r 10.20.0.11:80 -g -w 1\n",
		"-a -t 10.20.0.100:80 -r 10.20.0.12:80 -g -w 2\n", "-A -u 10.20.0.100:53 -s rr\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("gvsadm -Sn lacks %q:\n%s", w, out)
		}
	}

	// Changes: ipvsadm's errors, a weight, a new service, -C and -R, -Z;
	// then a reload of the file undoes what was changed by hand.
	if _, errs, code := gvsadm("-A", "-t", "10.20.0.100:80"); code != 1 || strings.TrimSpace(errs) != "Service already exists" {
		t.Errorf("gvsadm -A of an existing service: exit %d, %q; want 1 and ipvsadm's message", code, errs)
	}
	if _, errs, code := gvsadm("-d", "-t", "10.20.0.100:80", "-r", "10.20.0.99"); code != 1 || strings.TrimSpace(errs) != "No such destination" {
		t.Errorf("gvsadm -d of a missing real: exit %d, %q", code, errs)
	}
	mustRun := func(args ...string) {
		t.Helper()
		if _, errs, code := gvsadm(args...); code != 0 {
			t.Fatalf("gvsadm %v: exit %d: %s", args, code, errs)
		}
	}
	mustRun("-e", "-t", "10.20.0.100:80", "-r", "10.20.0.11", "-w", "0")
	mustRun("-A", "-t", "10.20.0.100:81", "-s", "wrr", "-p", "60")
	mustRun("-a", "-t", "10.20.0.100:81", "-r", "10.20.0.12:81", "-w", "5")
	out, _, _ = gvsadm("-Ln")
	for _, w := range []string{"  -> 10.20.0.11:80                Route   0      ", "TCP  10.20.0.100:81 wrr persistent 60\n  -> 10.20.0.12:81                Route   5      "} {
		if !strings.Contains(out, w) {
			t.Errorf("after the changes gvsadm -Ln lacks %q:\n%s", w, out)
		}
	}
	before := env.Reals()
	for range 4 { // weight 0: new connections all go to the other real
		echoOnce(ctx, t, l.Client, l.Client.Addr)
	}
	if after := env.Reals(); after[0].Conns != before[0].Conns || after[1].Conns != before[1].Conns+4 {
		t.Errorf("with %s at weight 0, 4 connections went %d and %d", l.Reals[0].Addr, after[0].Conns-before[0].Conns, after[1].Conns-before[1].Conns)
	}
	saved, _, _ := gvsadm("-Sn")
	mustRun("-C")
	if out, _, _ = gvsadm("-Ln"); strings.Contains(out, "TCP ") {
		t.Errorf("services left after -C:\n%s", out)
	}
	restore := exec.CommandContext(ctx, bins.gvsadm, "--socket", env.SocketPath, "-R")
	restore.Stdin = strings.NewReader(saved)
	if out, err := restore.CombinedOutput(); err != nil {
		t.Fatalf("gvsadm -R: %v: %s", err, out)
	}
	if again, _, _ := gvsadm("-Sn"); again != saved {
		t.Errorf("-S after -C and -R:\n%s\nwant what -S said before:\n%s", again, saved)
	}
	echoOnce(ctx, t, l.Client, l.Client.Addr) // the restored service forwards
	// -Z zeroes every counter. A segment of the connection just closed
	// (its last ACK) may still arrive after it, so zero until a read
	// finds 0 with nothing more sent: a -Z that zeroes nothing never does.
	zeroed := false
	for deadline := time.Now().Add(10 * time.Second); !zeroed && time.Now().Before(deadline); {
		mustRun("-Z")
		out, _, _ = gvsadm("-Ln", "--stats")
		zeroed = statLine.MatchString(out) && strings.Contains(out, "TCP  10.20.0.100:80                      0        0")
		if !zeroed {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if !zeroed {
		t.Errorf("after -Z (repeated for 10 s with no traffic) the counters are not 0:\n%s", out)
	}
	if err := env.Reload(ctx, drConfig(l, "rr", "persistence = \"0s\"", []int{1, 2}, "")); err != nil {
		t.Fatal(err)
	}
	out, _, _ = gvsadm("-Ln")
	if strings.Contains(out, ":81") || !strings.Contains(out, "  -> 10.20.0.11:80                Route   1      ") {
		t.Errorf("a reload of the file keeps the hand-made changes:\n%s", out)
	}

	// gvsadm --reload re-reads the file; a bad file is refused with its
	// paths and changes nothing.
	if err := os.WriteFile(env.ConfigPath, []byte(drConfig(l, "rr", "persistence = \"0s\"", []int{3, 2}, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := gvsadm("--reload"); code != 0 {
		t.Fatalf("gvsadm --reload: exit %d: %s", code, errs)
	}
	if out, _, _ = gvsadm("-Ln"); !strings.Contains(out, "  -> 10.20.0.11:80                Route   3      ") {
		t.Errorf("after gvsadm --reload of weight 3:\n%s", out)
	}
	if err := os.WriteFile(env.ConfigPath, []byte(drConfig(l, "rr", "persistence = \"0s\"", []int{-1, 2}, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := gvsadm("--reload"); code != 1 || !strings.Contains(errs, "service[0].real[0].weight") {
		t.Errorf("gvsadm --reload of a bad file: exit %d, %q; want 1 and the field path", code, errs)
	}
	if out, _, _ = gvsadm("-Ln"); !strings.Contains(out, "Route   3      ") {
		t.Errorf("a refused reload changed the running services:\n%s", out)
	}

	if _, errs, code := gvsadm("-Ln", "-t", "10.20.0.100:81"); code != 1 || !strings.Contains(errs, "No such service") {
		t.Errorf("gvsadm -Ln -t of a missing service: exit %d, %q; want 1 and No such service", code, errs)
	}
	cmd := exec.CommandContext(ctx, bins.gvsadm, "--socket", filepath.Join(t.TempDir(), "none.sock"), "-Ln")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "is it running?") {
		t.Errorf("gvsadm without gvsd: %v, %q; want an error that asks whether gvsd runs", err, out)
	}
}

func at(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return ""
}

// TestConcurrentEdits: 50 gvsadm changes at once against one gvsd (40
// reals added to one service, 10 weight changes of another's reals, and
// listings between them) are each kept: gvsd applies every edit as one
// read-modify-reload step, so none overwrites another. -S afterwards shows
// exactly the reals and weights the commands asked for.
func TestConcurrentEdits(t *testing.T) {
	l := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o := scenario.Options{Gvsd: []string{bins.gvsd}, Realserver: []string{bins.realserver}, Dir: t.TempDir(), Logf: t.Logf}
	env, err := scenario.Setup(ctx, l, config.DR, o, drConfig(l, "rr", "persistence = \"0s\"", []int{1, 2}, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, bins.gvsadm, append([]string{"--socket", env.SocketPath}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("gvsadm %v: %v: %s", args, err, out)
		}
		return nil
	}
	if err := run("-A", "-t", "10.20.0.100:81", "-s", "rr"); err != nil {
		t.Fatal(err)
	}
	const adds = 40
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range adds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Two real servers, many ports: NAT reals of service :81.
			rs := fmt.Sprintf("10.20.0.%d:%d", 11+i%2, 2000+i)
			errs <- run("-a", "-t", "10.20.0.100:81", "-r", rs, "-m", "-w", strconv.Itoa(1+i%5))
		}()
	}
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The last of these for each real wins; each must be one of them.
			errs <- run("-e", "-t", "10.20.0.100:80", "-r", fmt.Sprintf("10.20.0.%d", 11+i%2), "-w", strconv.Itoa(10+i))
			errs <- run("-Ln")
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	out, _ := exec.CommandContext(ctx, bins.gvsadm, "--socket", env.SocketPath, "-Sn").Output()
	for i := range adds {
		want := fmt.Sprintf("-a -t 10.20.0.100:81 -r 10.20.0.%d:%d -m -w %d\n", 11+i%2, 2000+i, 1+i%5)
		if !strings.Contains(string(out), want) {
			t.Errorf("-S lacks %q: the edit was lost", strings.TrimSpace(want))
		}
	}
	if n := strings.Count(string(out), "-a -t 10.20.0.100:81 "); n != adds {
		t.Errorf("-S shows %d reals of :81, want %d:\n%s", n, adds, out)
	}
	for _, rs := range []string{"10.20.0.11", "10.20.0.12"} {
		m := regexp.MustCompile(`-a -t 10\.20\.0\.100:80 -r ` + regexp.QuoteMeta(rs) + `:80 -g -w (\d+)\n`).FindStringSubmatch(string(out))
		if m == nil {
			t.Errorf("-S lacks real %s of :80:\n%s", rs, out)
			continue
		}
		if w, _ := strconv.Atoi(m[1]); w < 10 || w > 19 {
			t.Errorf("real %s of :80 has weight %d, want one of the weights set (10-19)", rs, w)
		}
	}
}
