for f in "$@"; do tail -2 $f | python3 -c "
import sys,json
a=json.loads(sys.stdin.readline()); b=json.loads(sys.stdin.readline())
print('$f', b['rule'], b['mode'], a['join_threshold'], 'F1',a['ecb_f1'],'merge',a['ecb_merge_share'],'P/R',a['ecb_precision'],a['ecb_recall'],'UCI',a['uci_head499_precision'],a['uci_head499_recall'],a['uci_head999_precision'],a['uci_head999_recall'],'theme',a['theme_far_pairs'],a['theme_near_pairs'],a['theme_seed_story_joins'],'splits',b['splits_total'])"; done
