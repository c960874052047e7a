"""The Wise simulator's own RSA keypair for signing webhooks.

This is a SANDBOX-ONLY TEST KEY, committed on purpose so webhook signatures are reproducible. It has
nothing to do with Wise: the simulator cannot sign with Wise's private key (contract 7.4), so clients
verifying sandbox webhooks must be given ``WEBHOOK_PUBLIC_KEY_PEM`` (also returned by
``WiseSimulator.credentials()``). Never use this key for anything real.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

WEBHOOK_PRIVATE_KEY_PEM = """\
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDvD7d+JYss72PT
haNJvXG7YPtSeO7wIBshLoNymr1zkKtjzWPdNhjD4I2vu+OqH3qiaxZHPEr7AZq3
IGswH8GO1rq/q1e5YE+bsZgVjWIpm8gXSJiS7oX2l5sW6+QVJefJgsxi6EqXl8q4
CEFo0hIYkR+cGww79U/qQeARh1ol3PtkNDZV4pJOcxL7BKByVsQh5jMbXk71MbjU
dmdulMmDheK/sx5fDrztzZH4UfC8hpIsCKYPxGZbrrWR7gPg8gVLKVwfXT58LrZd
briTP8aSK5c+rGd65YLuj96IgBDBqELOSbjSGDACinE9M9s2rigXovvBfT9MxsVF
sAcUxYPbAgMBAAECggEAFDKOvTCs1ooPNBLJXfSMhFlIQoqHHXCI+j+0yVz7fqUN
Zew3cLweUYZKUjucm4X3VXuYsUINz7EuAiTSCYnVT50iwAjY64eQkkXp5IBCd+N6
f0UZ5ugSF2htqP0bExJVx/euDvkzPCWN8gh4hkOhVcQFGKpMWVB7hP410SVPX31n
Tos0xpo1GoxH6acfD2/Mt9F7y7GAc/EIZZLOkdTCOFyzYvj1aGvhSSefjAlVcHhU
byJND9Xpie6JerV7zr39hGL6RHUHpjW2H2VTdym0KHxwM0I19fmaw79STQEq+U1N
rBiQ+wtqUcUDPvgRvJd73dsl7y1w2eNNcnkBZszXoQKBgQD3q+0aLoAEmDNG1xq+
fMb151iW/qHVb3GHr8dTq8Ho77KKuO9pU3mP90IGXx8azPZUacSNR7CZWNFO34PF
K2cm+UOHaM2dHSr6F61UNaPnDYVd9D904MAu9lYRZcBqzpgGiPZy8X6TH2d5kgV7
wU5Dnghlc7kYXv8Ycu/9zOYakQKBgQD3GauEMK3KYf4H4NNtDYSEaPaUbd0n2hsq
aUlPAQpDg3ZU8Z6QOZ5voam0NT7J1NnCJx2TELZ7gdIxhBb/xg63jtus4pvU0ajG
5sTpi1+FuN3bueyLZfedPCPiS8h64izPO0gI0dU9COUPEGuCJmVfiQuj1dzusUxa
NnT1FdX1qwKBgCquaDfg15LzH7MPkr5NBoSOD8hFrWH4yJnXgwQ6TzpzRFN/t1Jx
XjufIrOyZMvbkn/Nkl++gQKMOdXb0vuBlU80GZ0WRIjU4/khZ29hpxNEUz1zwBPG
P5hYP1DUNiqx26UUqVP5phR4jv52WZeQIoqoi03geX9nr5JpDE6yptzhAoGAL1J8
NYG5FsQziUC2XPE0ysLrTjvIGeS8RSAKyRWS6KEZnWT0j/xo6koUnQ2Ba9fWqEcj
c9HEkNyo65C3ct50XRT/3xk67MQGRalWVr+5WHuyCW2O7pdll3g4CxOmXlpIaJua
zQ2af+jfLUZgwHkn+ubdEtBXUmMkEzbQqUs4QacCgYEAwaDP/k1Im+Kms5aMl3rA
xJ0BJ8vt0Pgqh3fjqtaJcRCh5YZ+g11Bk0sgZE0tCOVUhuNA927AXk4d6JsjvaVf
NbdhG2uz4u7sPVG5n8cDYUE0rglTW0FB0U+5jV1o19ElZFLKM/74aU2GkoFPOxGn
tRJUSy/AjPVENH9dpfH4Oas=
-----END PRIVATE KEY-----
"""


def load_private_key() -> RSAPrivateKey:
    key = serialization.load_pem_private_key(WEBHOOK_PRIVATE_KEY_PEM.encode(), password=None)
    if not isinstance(key, RSAPrivateKey):
        raise TypeError("the Wise sandbox webhook key must be an RSA key")
    return key


WEBHOOK_PUBLIC_KEY_PEM: str = (
    load_private_key()
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
