"""Login and access: everything that decides who a caller is and what it may do.

`tokens` (signed access tokens), `live_sessions` (THE check every bearer credential passes, HTTP and the
stream alike, and the sessions' live state in Redis), `sessions` (login sessions with rotating refresh
tokens, the MFA challenge between the two login steps), `mfa` (TOTP and recovery codes), `secretbox`
(TOTP seeds encrypted at rest), `login_throttle` (failed logins per account and address), `api_keys`
(`gpb_...` keys as credentials) and `authz` (`Depends(require(P.X))` for routes).

Not here: the login routes (`deployments.api_auth`), SQL (`cluster.repositories`), the pure rules of
permissions, passwords and keys (`domain`).
"""
