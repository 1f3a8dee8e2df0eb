"""The 推奨アクションプラン catalog: 作業項目 A–K, sub-tasks, milestones, completion items, as versioned data."""
