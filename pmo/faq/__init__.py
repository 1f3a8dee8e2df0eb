"""FAQ entries by category, 「役に立った」 votes, and inquiries from bodies answered by ministries
(an answer can become a FAQ)."""
