// Command benchreport turns `go test -bench` output (read from stdin, one or
// more runs of each benchmark) into BENCHMARKS.md on stdout: the ratios to
// the in-run baselines first, then the absolute figures, each as the median
// and the range over the runs, with the machine named. scripts/bench.sh
// runs it.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// targets are the goals the issues set, by benchmark name.
var targets = map[string]string{
	"Postgres/Check/vs-SELECT-1":               "≤ 1.5×",
	"Postgres/ReserveCommit/vs-INSERT":         "≤ 2×",
	"Postgres/ReserveCommitMirrored/vs-INSERT": "≤ 2×",
	"Postgres/CheckMirrored/vs-Check":          "≤ 1.1×",
	"Postgres/CheckBlockedPrompted/vs-Check":   "≈ 1×",
	"PostgresCheckUsers/1000000-vs-1000":       "≤ 1.25×",
	"Dispatch":                                 "≥ 200 emails/s",
	"MemoryCheck":                              "< 1 µs, ≤ 2 allocs",
	"ObservedCheckPostgres/noop/vs-NoObserver": "≈ 1× (within noise)",
	"Postgres/CheckCredits/vs-Check":           "≤ 1.2×",
	"Postgres/ReserveCredits/vs-Reserve":       "≤ 1.2×",
}

// what each benchmark measures, for readers of the report.
var about = map[string]string{
	"Postgres/Check/vs-SELECT-1":                     "Check on Postgres vs a bare `SELECT 1`",
	"Postgres/CheckMirrored/vs-Check":                "Check with a subscription checker and a fresh mirror vs Check without a checker",
	"Postgres/CheckBlockedPrompted/vs-Check":         "Check of a blocked user already prompted vs an allowed Check",
	"Postgres/CheckBlocked/vs-SELECT-1":              "Check of a blocked user vs `SELECT 1`",
	"Postgres/ReserveCommit/vs-INSERT":               "Reserve + Commit vs a durable single-row `INSERT`",
	"Postgres/ReserveCommitMirrored/vs-INSERT":       "Reserve + Commit with a checker and a fresh mirror (the plan decided on the remembered mirror) vs `INSERT`",
	"Postgres/ReserveCommit/vs-ReadThenWrite":        "Reserve + Commit vs the usual hand-written gate: three reads, then a write (racy)",
	"Postgres/Record/vs-INSERT":                      "Record vs `INSERT`",
	"Postgres/CheckCredits/vs-Check":                 "Check of a user past the allowance on grants vs a user within it without any",
	"Postgres/ReserveCredits/vs-Reserve":             "Reserve + Cancel of a user past the allowance on grants vs a user within it without any",
	"Postgres/ReserveCommitCredits/vs-ReserveCommit": "Reserve + Commit that spends from grants vs one within the allowance",
	"PostgresCheckUsers/1000000-vs-1000":             "Check with 1,000,000 users in the tables vs with 1,000",
	"PostgresLatency/Check":                          "Check from 50 concurrent callers: p50, p99, p50 vs `SELECT 1` under the same load",
	"PostgresLatency/SELECT-1":                       "`SELECT 1` from 50 concurrent callers",
	"Dispatch":                                       "Delivery from the Postgres outbox through resendnotify.Notifier to a local stand-in vs sending directly",
	"MemoryCheck":                                    "Check on MemoryStore",
	"MemoryCheckParallel":                            "Check on MemoryStore from all cores",
	"MemoryRecord":                                   "Record on MemoryStore",
	"MemoryReserveCommit":                            "Reserve + Commit on MemoryStore",
	"ObservedCheck/noop/vs-NoObserver":               "Check on MemoryStore with otelfreemium on the no-op providers vs without an Observer",
	"ObservedCheck/sdk/vs-NoObserver":                "Check on MemoryStore with otelfreemium on the SDK (a meter reader, every span sampled) vs without an Observer",
	"ObservedCheckPostgres/noop/vs-NoObserver":       "Check on Postgres with otelfreemium on the no-op providers vs without an Observer",
	"ObservedCheckPostgres/sdk/vs-NoObserver":        "Check on Postgres with otelfreemium on the SDK vs without an Observer",
}

var line = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

type result struct {
	name    string
	metrics map[string][]float64 // unit -> one value per run
	units   []string             // in first-seen order
}

func main() {
	machine := flag.String("machine", "", "the machine, as it should be named in the report")
	flag.Parse()
	results, cpu := parse(os.Stdin)
	write(os.Stdout, results, cpu, *machine)
}

func parse(r io.Reader) ([]*result, string) {
	var order []*result
	byName := map[string]*result{}
	cpu := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		text := sc.Text()
		if c, ok := strings.CutPrefix(text, "cpu: "); ok {
			cpu = c
		}
		m := line.FindStringSubmatch(text)
		if m == nil {
			continue
		}
		res := byName[m[1]]
		if res == nil {
			res = &result{name: m[1], metrics: map[string][]float64{}}
			byName[m[1]] = res
			order = append(order, res)
		}
		fields := strings.Fields(m[2])
		for i := 0; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			unit := fields[i+1]
			if _, seen := res.metrics[unit]; !seen {
				res.units = append(res.units, unit)
			}
			res.metrics[unit] = append(res.metrics[unit], v)
		}
	}
	return order, cpu
}

// stat is the median and the range of vs.
func stat(vs []float64, format func(float64) string) string {
	s := slices.Clone(vs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	if len(s) == 1 || format(s[0]) == format(s[len(s)-1]) {
		return format(med)
	}
	return fmt.Sprintf("%s (%s–%s)", format(med), format(s[0]), format(s[len(s)-1]))
}

func ratio(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + "×" }

func duration(ns float64) string {
	switch {
	case ns >= 1e6:
		return strconv.FormatFloat(ns/1e6, 'f', 2, 64) + " ms"
	case ns >= 1e3:
		return strconv.FormatFloat(ns/1e3, 'f', 0, 64) + " µs"
	}
	return strconv.FormatFloat(ns, 'f', 0, 64) + " ns"
}

func number(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func whole(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }

func write(w io.Writer, results []*result, cpu, machine string) {
	fmt.Fprintf(w, "# Benchmarks\n\n")
	fmt.Fprintf(w, "Made by `scripts/bench.sh` on %s. Machine: %s; CPU: %s.\n\n", time.Now().UTC().Format("2006-01-02"), machine, cpu)
	fmt.Fprintf(w, "Each Postgres benchmark alternates the operation with its baseline in one loop, on one pool, so both see the same machine; "+
		"the ratio (×) is the operation's time over the baseline's. Figures are the median over the runs, with the range in brackets.\n\n")

	fmt.Fprintf(w, "## Ratios\n\n| benchmark | what | ratio | target |\n|---|---|---|---|\n")
	for _, r := range results {
		for _, unit := range r.units {
			if !strings.HasPrefix(unit, "x-base") {
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r.name, about[r.name], stat(r.metrics[unit], ratio), targets[r.name])
		}
	}

	fmt.Fprintf(w, "\n## Absolute figures\n\n| benchmark | time/op | baseline/op | allocs/op | B/op | other |\n|---|---|---|---|---|---|\n")
	for _, r := range results {
		cell := func(unit string, f func(float64) string) string {
			if vs, ok := r.metrics[unit]; ok {
				return stat(vs, f)
			}
			return ""
		}
		var other []string
		for _, unit := range r.units {
			switch {
			case unit == "ns/op" || unit == "base-ns/op" || unit == "allocs/op" || unit == "B/op" || strings.HasPrefix(unit, "x-base"):
			case strings.HasSuffix(unit, "-µs"):
				other = append(other, strings.TrimSuffix(unit, "-µs")+" "+stat(r.metrics[unit], func(v float64) string { return duration(v * 1e3) }))
			default:
				other = append(other, stat(r.metrics[unit], whole)+" "+unit)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", r.name, cell("ns/op", duration), cell("base-ns/op", duration),
			cell("allocs/op", number), cell("B/op", number), strings.Join(other, ", "))
	}
}
