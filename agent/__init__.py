"""Design agent: request understanding and the tool-calling chat agent over the stages (issue #6)."""
