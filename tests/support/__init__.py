"""Support code shared by the test modules (test modules never import each other)."""
