"""Synthetic identifiability study; the code lives in synthetic_study/ (this file keeps `python synthetic.py` working)."""
from synthetic_study.cli import main

if __name__ == '__main__':
    main()
