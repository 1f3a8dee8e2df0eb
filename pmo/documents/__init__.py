"""The document library: ministry documents with versions (最新版), bodies' 取組情報 after approval,
stored files, subscriptions to 分野/府省 with unread marks and e-mail notices."""
