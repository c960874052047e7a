"""Infor <-> Cleo: X12 850 / 810 out, 810 in to Infor AP, 997 acknowledgments."""
