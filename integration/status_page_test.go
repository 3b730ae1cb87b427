package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/integration/lab"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// The traffic of TestStatusPage: one new connection and request every
// statusLoadEvery from the client, bounded by statusLoadMax requests, so
// the test stays light on a shared machine.
const (
	statusLoadEvery = 20 * time.Millisecond
	statusLoadMax   = 3000
	statusListener  = "127.0.0.1:9464"
	// statusShotAfter is how long the load runs before the screenshot
	// when GVS_STATUS_SCREENSHOT asks for one to keep.
	statusShotAfter = 40 * time.Second
)

// chromium returns the headless browser's path, or skips.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("needs chromium to load the status page (apt-get install chromium)")
	return ""
}

// TestStatusPage runs gvsd with a metrics listener, an HTTP-checked DR
// service over both reals and a light paced HTTP load, then loads the
// status page in headless Chromium inside the director's namespace (no
// internet there) and checks the rendered DOM: both reals listed, up, with
// non-zero connection and packet rates drawn by the page's own script from
// /status.json. It also takes a screenshot (copied to
// $GVS_STATUS_SCREENSHOT when set, for the README).
func TestStatusPage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to build network namespaces and run chromium in one")
	}
	browser := chromium(t)
	l := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var b strings.Builder
	fmt.Fprintf(&b, "[director]\ninterface = %q\nworkers = 2\nmetrics = %q\n\n", l.Director.Iface, statusListener)
	fmt.Fprintf(&b, "[[service]]\nname = \"web\"\naddress = \"%s:%d\"\nscheduler = \"rr\"\nforward = \"dr\"\n", scenario.VIP, floodPort)
	fmt.Fprintf(&b, "  [service.check]\n  type = \"http\"\n  path = \"/healthz\"\n  interval = \"500ms\"\n  timeout = \"300ms\"\n")
	for _, r := range l.Reals {
		fmt.Fprintf(&b, "  [[service.real]]\n  address = \"%s:%d\"\n", r.Addr, floodPort)
	}
	o := scenario.Options{Gvsd: []string{bins.gvsd}, Realserver: []string{bins.realserver}, Dir: t.TempDir(), Logf: t.Logf}
	env, err := scenario.Setup(ctx, l, config.DR, o, b.String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		env.Close()
		if t.Failed() {
			t.Logf("gvsd log:\n%s", env.Gvsd.Log())
		}
	}()
	for _, r := range l.Reals {
		stop, err := serveChecked(r, floodPort, new(atomic.Bool))
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
	}
	vip := netip.AddrPortFrom(scenario.VIP, floodPort)
	load := pacedLoad(l.Client, vip)
	defer load.stop()

	// Wait until gvsd's own numbers show what the page must: both reals
	// up with traffic in the estimator.
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return l.Director.DialTCP(ctx, netip.MustParseAddrPort(statusListener))
		},
	}}
	var st api.Status
	deadline := time.Now().Add(30 * time.Second)
	for {
		st = api.Status{}
		err := getJSON(c, "http://"+statusListener+"/status.json", &st)
		if err == nil && len(st.Services) == 1 && len(st.Services[0].Reals) == 2 {
			ready := 0
			for _, r := range st.Services[0].Reals {
				if r.Health == "up" && r.Rates.CPS > 0 && r.Rates.InPPS > 0 && r.History != nil && len(r.History.CPS) > 0 {
					ready++
				}
			}
			if ready == 2 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("status.json never showed both reals up with traffic: %v %+v; load: %d ok, %d failed", err, st.Services, load.ok.Load(), load.failed.Load())
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("status.json: %d samples of history; reals %s %+v, %s %+v", len(st.History.Times),
		st.Services[0].Reals[0].Address, st.Services[0].Reals[0].Rates, st.Services[0].Reals[1].Address, st.Services[0].Reals[1].Rates)

	dir := t.TempDir()
	flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--no-first-run", "--user-data-dir=" + dir, "--virtual-time-budget=5000", "--hide-scrollbars"}
	run := func(args ...string) []byte {
		t.Helper()
		cmd := l.Director.Command(ctx, browser, append(flags, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %v: %v\n%s", args, err, stderr.Bytes())
		}
		return out
	}
	dom := string(run("--dump-dom", "http://"+statusListener+"/"))
	rows := regexp.MustCompile(`<tr class="real" data-real="([^"]+)" data-health="([^"]*)" data-ready="([^"]*)" data-cps="(\d+)" data-in-pps="(\d+)"`).FindAllStringSubmatch(dom, -1)
	seen := map[string]bool{}
	for _, m := range rows {
		seen[m[1]] = true
		cps, _ := strconv.Atoi(m[4])
		pps, _ := strconv.Atoi(m[5])
		if m[2] != "up" || m[3] != "true" || cps == 0 || pps == 0 {
			t.Errorf("the page shows real %s health %q ready %s CPS %d InPPS %d; want up, ready, non-zero rates", m[1], m[2], m[3], cps, pps)
		}
	}
	for _, r := range l.Reals {
		if a := netip.AddrPortFrom(r.Addr, floodPort).String(); !seen[a] {
			t.Errorf("the page does not show real %s", a)
		}
	}
	for _, want := range []string{`class="badge up"`, `id="worker-table"`, `id="vrrp"`, `id="bgp"`} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %s", want)
		}
	}
	if m := regexp.MustCompile(`<span id="conn" class="([^"]*)">([^<]*)<`).FindStringSubmatch(dom); m == nil || !strings.HasPrefix(m[2], "updated ") {
		t.Errorf("the page's status line says %q, want updated (it read status.json)", m)
	}
	if t.Failed() {
		t.Logf("rendered DOM:\n%s", dom)
	}

	// For the README's picture, let the sparklines fill for a while
	// (the load stays light and bounded by statusLoadMax).
	keep := os.Getenv("GVS_STATUS_SCREENSHOT")
	if keep != "" {
		time.Sleep(statusShotAfter)
	}
	shot := dir + "/status-page.png"
	run("--window-size=1280,560", "--screenshot="+shot, "http://"+statusListener+"/")
	png, err := os.ReadFile(shot)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot: %v (%d bytes)", err, len(png))
	}
	if keep != "" {
		if err := os.WriteFile(keep, png, 0o644); err != nil {
			t.Error(err)
		}
	}
	load.stop()
	t.Logf("load: %d requests ok, %d failed; screenshot %d bytes", load.ok.Load(), load.failed.Load(), len(png))
	if env.Gvsd.Exited() {
		t.Fatal("gvsd exited")
	}
}

func getJSON(c *http.Client, url string, v any) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	return json.Unmarshal(b, v)
}

// paced is a light HTTP load: one new connection and request every
// statusLoadEvery, at most statusLoadMax.
type paced struct {
	ok, failed atomic.Int64
	done       chan struct{}
	once       sync.Once
	wg         sync.WaitGroup
}

func pacedLoad(h *lab.Host, addr netip.AddrPort) *paced {
	p := &paced{done: make(chan struct{})}
	c := &http.Client{Timeout: requestTimeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, a string) (net.Conn, error) {
			return h.DialTCP(ctx, netip.MustParseAddrPort(a))
		},
		DisableKeepAlives: true,
	}}
	url := "http://" + addr.String() + "/"
	p.wg.Add(1)
	go func() { // the paced load, ended by stop or after statusLoadMax requests
		defer p.wg.Done()
		tick := time.NewTicker(statusLoadEvery)
		defer tick.Stop()
		for range statusLoadMax {
			select {
			case <-p.done:
				return
			case <-tick.C:
			}
			if err := get(c, url); err != nil {
				p.failed.Add(1)
			} else {
				p.ok.Add(1)
			}
		}
	}()
	return p
}

func (p *paced) stop() {
	p.once.Do(func() { close(p.done) })
	p.wg.Wait()
}
