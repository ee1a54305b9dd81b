"""Security of the charger's connection and of what it keeps (OCPP 1.6 Security Whitepaper,
edition 3), in words of no OCPP version: security events and their log, the credentials of
each security profile, certificates, TLS contexts, key pairs and certificate requests.
"""
