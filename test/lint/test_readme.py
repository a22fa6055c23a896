"""The README stays a first-ten-minutes page: at most 250 lines, the two commands verbatim;
reference text goes to docs/."""
from pathlib import Path

README = Path(__file__).resolve().parents[2] / 'README.md'


def test_readme_is_short_and_starts_with_the_two_commands():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f'README.md has {len(lines)} lines; move reference text to docs/'
    commands = [line.split('#')[0].strip() for line in lines if line.startswith('bash tools/')]
    assert commands[:2] == ['bash tools/demo.sh', 'bash tools/test.sh']
