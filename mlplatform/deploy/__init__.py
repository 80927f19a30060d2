"""Deployment: Bento packaging, deployment records and audit, the Deployer interface and its embedded backend
(local processes), the router, the container (Compose) project and promotion."""
