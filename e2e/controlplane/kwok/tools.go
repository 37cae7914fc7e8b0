//go:build tools

// Package tools pins the kwok controller main package for `go mod tidy`;
// build.sh builds sigs.k8s.io/kwok/cmd/kwok from this module.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
