"""The sweep: every person against every program as of a date, compared with what is assigned.

- :mod:`haqq.sweep.facts`: which registry snapshot column answers which fact;
- :mod:`haqq.sweep.frames`: the registry as of a date, each program's universe, beneficiaries
  and population frame;
- :mod:`haqq.sweep.evaluate`: the decisions, with the vector backend of the rule language;
- :mod:`haqq.sweep.compare`: missed rights, no longer entitled, wrong amounts;
- :mod:`haqq.sweep.report`: the report files, the summary, opening cases for missed rights;
- :mod:`haqq.sweep.whatif`: the same with changed parameters, costed per program.
"""
