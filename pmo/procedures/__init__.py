"""The catalog of 番号利用事務・手続 (slides 75–87), the 主務省令事項の整理 example (slide 12), and
ministries' versioned data sets (特定個人情報データ標準レイアウト)."""
