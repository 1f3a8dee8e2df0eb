"""Organisations: prefectures, municipalities (incl. 特別区・政令市・中核市), unions with members, ministries."""
