"""PBKDF2 with few iterations for the users tests create.

Django's PBKDF2 hasher runs 1,000,000 iterations: 0.25 s of CPU per password, and the owner, member and
outsider fixtures hash three of them in hundreds of tests. This is the same hasher (same algorithm
name, same code) with fewer iterations. A PBKDF2 hash records its iteration count, so a password hashed
here is still checked correctly by the default hasher in the processes the tests start (gunicorn, the
listener, workers), and a hash made with the full count is checked correctly here.

Only the test process uses it (tests/conftest.py): config/settings.py sets no PASSWORD_HASHERS, so
Rowbell itself, and every process the tests start, runs with Django's default list.
"""

from __future__ import annotations

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class FewIterationsPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1_000


HASHERS = ["tests.fast_hasher.FewIterationsPBKDF2PasswordHasher"]
