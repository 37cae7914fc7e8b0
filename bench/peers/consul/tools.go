//go:build tools

// Package tools pins Consul's main package so `go mod tidy` keeps its module
// graph; build.sh builds it with `go build github.com/hashicorp/consul`.
package tools

import _ "github.com/hashicorp/consul"
