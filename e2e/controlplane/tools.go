//go:build tools

// Package tools records the upstream main packages that build.sh compiles, so
// that `go mod tidy` keeps their full dependency graph in go.mod/go.sum.
// Importing a main package is not allowed in a real build; the `tools` build
// tag is never set, so this file is only seen by `go mod tidy`.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
