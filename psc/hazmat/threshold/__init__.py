"""Threshold Paillier: k-of-n decryption with a trusted dealer and proved decryption shares.

**Hazmat.** This package is the raw scheme.  Protocol code should go through the key
committee role, which adds envelopes, signatures and the rule that only masked, noised
ciphertexts are ever decrypted.  Normative specs: ``protocols/keygen.md`` and
``protocols/decryption-shares.md``; vectors: ``protocols/vectors/threshold.json``.

Scheme: Shoup's threshold RSA technique carried over to Paillier (Fouque, Poupard and
Stern 2000; Damgard and Jurik 2001 with ``s = 1``).  Notation: ``N`` key holders
(``parties``), threshold ``k``, ``Delta = N!``.

Key generation by a trusted dealer (:func:`~psc.hazmat.threshold.dealer.deal`)::

    p = 2p' + 1, q = 2q' + 1 safe primes,  n = p q,  m = p' q'
    d = 0 mod m,  d = 1 mod n                      (CRT; gcd(n, m) = 1)
    f(X) = d + a_1 X + ... + a_{k-1} X^{k-1}       a_j uniform in Z_{nm}
    s_i = f(i) mod nm                              (key share of party i = 1..N)
    v = r^2 mod n^2,  v_i = v^(Delta s_i) mod n^2  (public verification keys)

The public side is an ordinary :class:`~psc.hazmat.paillier.PaillierPublicKey` (``n``, ``g = n+1``):
anything encrypted by :class:`~psc.hazmat.backends.paillier.PackedPaillier` or by ``phe`` under it
decrypts with the committee.

Decryption of ``c = (1+n)^M r^n mod n^2``::

    c_i = c^(2 Delta s_i) mod n^2                                  (share of party i)
    proof that log_{c^4}(c_i^2) = log_v(v_i)   (= Delta s_i; Chaum-Pedersen, Fiat-Shamir)
    for any set S of k indices, lambda_j = Delta prod_{j' in S, j' != j} j' / (j' - j)  (integers)
    c' = prod_{j in S} c_j^(2 lambda_j) = c^(4 Delta^2 d) = (1+n)^(4 Delta^2 M) mod n^2
    M  = L(c') * (4 Delta^2)^(-1) mod n,   L(x) = (x - 1) / n

The exponent identity holds because ``sum_j lambda_j s_j = Delta d (mod nm)``, ``c^4`` has
order dividing ``nm``, ``d = 0 mod m`` kills the randomizer ``r^(4n Delta^2 d)`` and
``d = 1 mod n`` leaves ``(1+n)^(4 Delta^2 M)``.

**Fewer than k shares cannot decrypt.**  For any ``k-1`` indices ``i_1..i_{k-1}`` the map
``(a_1..a_{k-1}) -> (f(i_1) - d, ..., f(i_{k-1}) - d)`` is a Vandermonde system whose
determinant ``prod i_j prod (i_j - i_l)`` is a unit mod ``nm`` (every factor is below
``N < min(p', q')``), so for *every* candidate secret ``d*`` there is exactly one polynomial
through ``(0, d*)`` and the ``k-1`` shares: ``k-1`` key shares are uniform and independent
of ``d`` (information-theoretically).  Their decryption shares and the public ``v_i`` add
nothing a simulator could not produce from the public key (Shoup 2000, Thm. 2; FPS 2000),
so a coalition of ``k-1`` holders decrypts only by breaking Paillier itself (DCR).
:func:`combine` refuses fewer than ``k`` shares; interpolating ``k-1`` of them gives
garbage (``tests/test_threshold.py`` shows both).

What each party learns:

* the **dealer** learns ``p, q``, ``d`` and every share; it must erase all of it after
  handing out the shares (see ``protocols/keygen.md`` for replacing it by distributed key
  generation);
* a **key holder** learns its own ``s_i`` (uniform, independent of ``d`` when ``k >= 2``);
* anyone who sees **decryption shares** of ``c`` learns ``c^(2 Delta s_i)``; with ``k`` valid
  ones they learn ``M`` (so shares are only ever produced for ciphertexts that may be
  revealed), with fewer nothing beyond the public key (zero-knowledge proofs, random oracle);
* the **combiner** holds no secret; anyone can verify shares and combine them.

A share comes with a non-interactive proof binding the key (its fingerprint covers ``n``,
``k``, ``N``, ``v`` and every ``v_i``), the party index, the ciphertext and the share, so a
wrong share, a share for another ciphertext or under another index fails verification and
its holder is identified; :func:`decrypt_with_committee` and :func:`decrypt_packed`
exclude such holders and still decrypt with any ``k`` good shares.

For a packed ciphertext of ``B`` blocks a holder sends one share per block and *one*
batched proof (:class:`PackedDecryptionShare`): both sides derive 128-bit weights
``rho_j`` from a hash of every block and share, and the proof is made for
``C = prod c_j^rho_j`` and ``C_i = prod c_ij^rho_j``.  If any ``c_ij^2 != c_j^(4 Delta s_i)``
the combined statement is false except with probability ``2^-128`` (every non-trivial
element of the squares group has order divisible by a prime of more than 128 bits).

Reference flow (each line is one role; ``tests/test_threshold.py`` runs it)::

    pk, key_shares = deal(3, 5, bits=3072)                 # dealer, once; then erases
    key_shares[i].check(); pk.check_verification_keys()    # each holder; anyone
    ct = PackedPaillier(pk.public, layout).encrypt(x)      # agencies encrypt as usual
    sh = key_shares[i].packed_decryption_share(ct)         # holder i, if authorised
    out = decrypt_packed(pk, ct, received_shares)          # combiner: out.plaintext, out.bad

Errors: :class:`~psc.exceptions.InvalidMessage` for every verification failure (the
message names the party index); :class:`~psc.exceptions.InsufficientShares` when fewer
than ``k`` valid shares are left; :class:`~psc.exceptions.ParameterError` for insecure or
inconsistent parameters; plain ``ValueError`` for other caller mistakes (duplicate or
out-of-range indices); :class:`~psc.exceptions.KeyMismatch` for a ciphertext under another
key.
"""
