"""The business rules: orders, fleet, identity, billing, support; storage through models/, no HTTP and no sockets."""
