"""The HTTP inference service (LitServe); see README."""
