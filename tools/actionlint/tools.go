//go:build tools

// Package tools pins the actionlint version that scripts/actionlint builds.
// Bump the version in go.mod (and run `go mod tidy` here) to upgrade.
package tools

import (
	_ "github.com/rhysd/actionlint/cmd/actionlint"
)
