"""Policy engine: PIPL checks, sensitive-category refusal, impact assessment, subject rights.

Modules (each a concept; import what you need, this package imports nothing itself):

* :mod:`psc.policy.sensitive` and ``vocabulary.toml``: hard refusal of rules that score
  sensitive categories (the catalog loader calls it);
* :mod:`psc.policy.checks`, :mod:`psc.policy.linter`, :mod:`psc.policy.findings`,
  :mod:`psc.policy.proportionality`: the linter, one check per stable id
  (``protocols/policy-checks.md``);
* :mod:`psc.policy.deployment` and ``demo-deployment.toml``: deployment descriptions
  (``protocols/deployment.md``);
* :mod:`psc.policy.pia`: the PIPL Art. 55-56 impact-assessment report;
* :mod:`psc.policy.rights` and :mod:`psc.policy.clock`: data-subject request workflows
  with working-day deadlines;
* :mod:`psc.policy.consent` and :mod:`psc.policy.consent_wire`: relying-party consent
  tokens (``protocols/consent-token.md``).
"""
