// Package config holds the shipped configuration files (documented, matching deploy/local);
// the ones a binary needs without a config directory are built in from here.
package config

import _ "embed"

// FraudRules is fraud-rules.yml: the rule set `bytebasket fraud` applies when none is
// configured.
//
//go:embed fraud-rules.yml
var FraudRules []byte
