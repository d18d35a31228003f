package fencebench_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is the unit of /proc/PID/stat's times (USER_HZ: 100 on Linux).
const clockTick = 10 * time.Millisecond

// selfCPU is the CPU time used so far by this process.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// postgresCPU is the CPU time used so far by the PostgreSQL server this
// process started (the postmaster and its children alive now): what a
// round costs whatever else the machine runs, unlike its wall time on a
// shared machine. Reading /proc costs this process some milliseconds:
// read it outside the span selfCPU measures.
func postgresCPU() (postgres time.Duration) {
	procs := procStats()
	var postmaster int
	for pid, st := range procs {
		if st.ppid == os.Getpid() && st.comm == "postgres" {
			postmaster = pid
			postgres += st.cpu
		}
	}
	for _, st := range procs {
		if postmaster != 0 && st.ppid == postmaster {
			postgres += st.cpu
		}
	}
	return postgres
}

type procStat struct {
	ppid int
	comm string
	cpu  time.Duration
}

// procStats reads /proc/*/stat: each process's parent, name and CPU time.
func procStats() map[int]procStat {
	out := map[int]procStat{}
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(s[:open]))
		// After the name: state ppid ... utime (14th field) stime (15th).
		f := strings.Fields(s[closing+1:])
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		out[pid] = procStat{ppid: ppid, comm: s[open+1 : closing], cpu: time.Duration(utime+stime) * clockTick}
	}
	return out
}
