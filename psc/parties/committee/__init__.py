"""The k-of-n key committee's DP grade reveal (normative: ``protocols/reveal-dp.md``).

Roles (each method's docstring names the role that runs it):

* :class:`CommitteeMember` (``n`` of them): holds one key share of
  :mod:`psc.hazmat.threshold` and an Ed25519 signing key.  Contributes an encrypted **noise
  share** at every revealed slot and an encrypted **mask share** at every other slot of
  the blocks it is asked about, then one proved decryption share of the noised, masked
  blocks, which it recomputes itself.  Sees: ciphertexts, target slot numbers, the other
  members' encrypted shares.  Never a plaintext.
* :class:`KeyCommittee` (the **combiner**, the party answering grade requests; it holds
  no key share): checks the privacy budget, collects and verifies noise shares, adds them
  homomorphically, collects and verifies decryption shares, combines ``k`` good ones,
  maps ``base + sum + noise`` to a grade and discards the noisy value.  Sees: for each
  revealed slot its noisy score and its exact live cap counts; for every other slot of a
  decrypted block a value within statistical distance ``2^-mask_bits`` of uniform.
* :class:`CommitteeRevealer`: the :class:`~psc.parties.key_holder.Revealer` a key holder
  plugs the committee into.

Transport: a :class:`MemberLink` per member (:class:`LocalLink` in process,
:class:`MemberProcess` in its own OS process; :func:`parallel` asks several at once).

Batch: a block whose every slot is revealed needs no masks, and its score and cap
counters are decrypted as one merged ciphertext (``CommitteeParameters.merge_shift``),
which halves the members' work.  Statistics (:meth:`KeyCommittee.release_sums`, used by
:mod:`psc.statistics`) reveal every cell of a vector of sums the same way.

The algebra, per block ``c = E(x)`` (``x`` the packed live sums, ``S`` slots)::

    member i:  z_i = E(pack(e_i)),  e_i[s] = noise share   (s a target, score label)
                                    e_i[s] = 0             (s a target, cap label)
                                    e_i[s] = mask share    (s not a target)
    combiner:  c' = c * prod_{i in G} z_i  = E(x + sum_i e_i)        (G: >= h good shares)
    members:   k proved shares of c' (each member recomputes c' from c and G itself)
    combiner:  y = D(c');  grade(s) = grades_of(base + y[s], caps) for targets; y[s] of
               other slots is x[s] + sum of masks: statistically hidden, never used.

Noise: each member's share is drawn from :func:`psc.dp.distributed.share_parameters`
(target discrete Laplace of scale ``sensitivity / epsilon``, ``honest = h``), so any ``h``
honest shares alone sum to exactly the target; shares are redrawn above a public tail
bound ``B`` (``P(|share| > B) <= 2^-63``), which costs ``delta = (1 + e^eps) n 2^-63``.
Masks: each member's mask share is uniform in ``[0, m)`` with ``m = 2^(mask_bits + 1 +
bitlen(V))`` (``V`` the largest lawful live value), so one honest member's mask alone
hides a slot to statistical distance ``2 V / m <= 2^-mask_bits`` and no sum can carry into
the next slot (the layout, :func:`reveal_layout`, has room for ``V + n max(B, m-1)``).

Accounting: a subject's release is its grade for one period (release id
``grade:<period>``), charged ``ApproxDP(epsilon, delta)`` in a
:class:`~psc.dp.budget.BudgetLedger` (key ``subject:<slot>``) in the same transaction
that stores the signed answer; a repeat in the same period returns the stored grade and
spends nothing; a request that would exceed a budget raises
:class:`~psc.exceptions.BudgetExhausted` before any member is asked for anything.
Members independently refuse to decrypt a second release of the same (slot, period),
so even a dishonest combiner gets at most one noisy value per subject and period.
"""

from psc.parties.committee.accuracy import expected_misgrade_rate, total_noise_pmf
from psc.parties.committee.combiner import KeyCommittee
from psc.parties.committee.member import CommitteeMember, NoiseWitness
from psc.parties.committee.outcomes import CommitteeReveal, StatisticRelease, open_committee_store
from psc.parties.committee.params import (
    MECHANISM,
    SCORE_LABEL,
    CommitteeParameters,
    RevealPolicy,
    noise_share_bound,
    release_id,
    reveal_layout,
    subject_key,
    tail_delta,
)
from psc.parties.committee.revealer import CommitteeRevealer
from psc.parties.committee.transport import (
    LocalLink,
    MapMembers,
    MemberLink,
    MemberProcess,
    parallel,
    prepare_processes,
)

__all__ = [
    "MECHANISM",
    "SCORE_LABEL",
    "CommitteeMember",
    "CommitteeParameters",
    "CommitteeReveal",
    "CommitteeRevealer",
    "KeyCommittee",
    "LocalLink",
    "MapMembers",
    "MemberLink",
    "MemberProcess",
    "NoiseWitness",
    "RevealPolicy",
    "StatisticRelease",
    "expected_misgrade_rate",
    "noise_share_bound",
    "open_committee_store",
    "parallel",
    "prepare_processes",
    "release_id",
    "reveal_layout",
    "subject_key",
    "tail_delta",
    "total_noise_pmf",
]
