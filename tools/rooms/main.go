// Command rooms checks the sizes the codebase keeps to: no file over
// maxFileLines lines and no function over maxFuncLines lines, outside
// generated code and tests (files ending in _test.go, testdata). It walks
// the Go files under its argument, the modules nested there included
// (cmd/search-bench, deploy/standins, tools/*: they are this repository's
// code as much as the service is), and fails for every file or
// function over its limit that known.txt does not list, and for every
// listed one that grew past its recorded size or was brought within the
// limit (remove its line: the list only shrinks). make lint runs it.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

const (
	maxFileLines = 600
	maxFuncLines = 100
)

func main() {
	root := "."
	if len(os.Args) > 1 {
		root = os.Args[1]
	}
	problems, err := check(root, "known.txt")
	if err != nil {
		fmt.Fprintln(os.Stderr, "rooms:", err)
		os.Exit(2)
	}
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, "rooms:", p)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
}

// check returns what is wrong under root, given the known offenders listed
// in knownPath ("name lines" per line: a file's path, or path:Func).
func check(root, knownPath string) ([]string, error) {
	known, err := readKnown(knownPath)
	if err != nil {
		return nil, err
	}
	sizes, err := measure(root)
	if err != nil {
		return nil, err
	}
	var problems []string
	for name, n := range sizes {
		limit := maxFileLines
		kind := "file"
		if strings.Contains(name, ":") {
			limit, kind = maxFuncLines, "function"
		}
		if n <= limit {
			continue
		}
		was, ok := known[name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s %s has %d lines; the limit is %d: split it", kind, name, n, limit))
		case n > was:
			problems = append(problems, fmt.Sprintf("%s %s grew from %d to %d lines; the limit is %d: split it instead", kind, name, was, n, limit))
		}
	}
	for name, was := range known {
		limit := maxFileLines
		if strings.Contains(name, ":") {
			limit = maxFuncLines
		}
		if n, ok := sizes[name]; !ok || n <= limit {
			problems = append(problems, fmt.Sprintf("%s (listed with %d lines) is within the limit now or gone: remove it from tools/rooms/known.txt", name, was))
		}
	}
	sort.Strings(problems)
	return problems, nil
}

// measure returns the lines of every checked file (by its slash path
// relative to root) and of every function in it (path:Name, or
// path:Type.Name for a method).
func measure(root string) (map[string]int, error) {
	sizes := map[string]int{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && (d.Name() == "testdata" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
		if err != nil {
			return err
		}
		if ast.IsGenerated(f) {
			return nil
		}
		sizes[rel] = bytes.Count(src, []byte("\n"))
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			name := fd.Name.Name
			if fd.Recv != nil && len(fd.Recv.List) == 1 {
				name = recvName(fd.Recv.List[0].Type) + "." + name
			}
			sizes[rel+":"+name] = fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1
		}
		return nil
	})
	return sizes, err
}

func recvName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return recvName(t.X)
	case *ast.IndexExpr:
		return recvName(t.X)
	case *ast.IndexListExpr:
		return recvName(t.X)
	case *ast.Ident:
		return t.Name
	}
	return "?"
}

// readKnown reads "name lines" lines; blank lines and # comments are
// skipped.
func readKnown(path string) (map[string]int, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]int{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	known := map[string]int{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		n, err := strconv.Atoi(fields[len(fields)-1])
		if len(fields) != 2 || err != nil {
			return nil, fmt.Errorf("%s:%d: want \"name lines\", got %q", path, line, text)
		}
		known[fields[0]] = n
	}
	return known, sc.Err()
}
