/*
 * A model of lockwarden's file protocol (src/file/), checked by spin: `npm run model`.
 *
 * What is modelled, one id:
 *   - the kernel: flock(2) per open file description (shared/exclusive, LOCK_NB tries,
 *     dropped on close and on death), files as inode generations a path names or not;
 *   - the lock file `<base>.lock`, its gate `<base>.gate` and announcement `<base>.rwait`,
 *     each unlinked by cleanup and made again (a new generation) by the next opener;
 *   - NW writer and NR reader processes (one manager each) running FileAttempt.poll in a
 *     loop: request, poll until granted, hold, unlock; each system call on shared state is
 *     one atomic step and names the function in src/ that makes it;
 *   - a cleaner (another manager's cleanupStaleLocks: cleanup.ts cleanOne), CLEANS times;
 *   - faults: up to FAULTS processes are killed (the kernel drops their locks) or stopped
 *     for ever (they keep what they hold: SIGSTOP, a debugger) at any step;
 *   - time, abstracted to one fact: whether the grace (GRACE_MS, gate.ts) since the last
 *     release is still running. A release (a touch of the lock file or the gate) starts it;
 *     the process Tick ends it, but only once every live waiter has polled at least once
 *     since that touch (GRACE_MS = 50 ms against a waiter's reaction of microseconds to a
 *     millisecond: a live waiter woken by the touch acts within the grace). A stopped or
 *     dead waiter does not hold the tick back.
 *
 * Not modelled: holder records and tokens (status and fencing, never the lock itself),
 * tasks inside one manager (queue.ts, in memory), the idle-slot LRU (descriptors stay open
 * between attempts, as for an id in use), tryAcquire's `once` (its early exits are the
 * cancel path's), gateless slots other than the NO_GATE mutant, cleanup of orphaned gates.
 *
 * Switches (-D on spin's command line):
 *   NW, NR        writers, readers (default 2, 2)
 *   ROUNDS        attempts per process (0: for ever, for the liveness runs)
 *   CLEANS        cleanups by the cleaner (default 0)
 *   FAULTS        processes that may be killed or stopped (default 0)
 *   STOP_ONLY     faults stop a waiter that holds no lock file lock (the grace scenario)
 *   CANCEL        a waiter may give up (a timeout or abort: FileAttempt.cancel)
 *   MIXED         each attempt of each process reads or writes (a free choice)
 *   TIMELESS      safety runs: whether the grace is over is a free choice at every poll
 *   NO_TICK       liveness with everyone live: the grace never runs out before a waiter acts
 *   LOCKFILE_ONLY, HAVOC_LINE  the lock file layer alone: each poll's use of lockMain, with
 *                 the gate's and the announcement's answers free choices (safety runs)
 * Mutants (each must be caught):
 *   NO_RECHECK    lockNamed skips stillNamed         -> mutual exclusion fails
 *   NO_GRACE      #pastTheLine never passes the line -> a stopped waiter blocks a free lock
 *   NO_GATE       every slot gateless (no gate, no announcements) -> writers starve
 */

#ifndef NW
#define NW 2
#endif
#ifndef NR
#define NR 2
#endif
#ifndef ROUNDS
#define ROUNDS 0
#endif
#ifndef CLEANS
#define CLEANS 0
#endif
#ifndef FAULTS
#define FAULTS 0
#endif

#define NU (NW + NR)       /* user processes: 0 .. NW-1 write, NW .. NU-1 read */
#define CL NU              /* the cleaner's descriptors */
#define NP (NU + 1)
#define MAXU 4             /* array sizes (NU <= MAXU) */

#define UN 0               /* flock modes */
#define SH 1
#define EX 2
#define NOFD 255           /* no descriptor / the path names nothing */

#define LK 0               /* <base>.lock */
#define GT 1               /* <base>.gate */
#define RW 2               /* <base>.rwait */

#define START 0            /* FileAttempt #phase */
#define YIELD 1
#define GATE 2
#define MAIN 3

/* Kernel and file system. */
byte fd[(MAXU + 1) * 3];   /* generation each process's descriptor is open on, or NOFD */
byte md[(MAXU + 1) * 3];   /* the flock held through that descriptor */
byte named[3];             /* generation the path names now, or NOFD */
byte made[3];              /* generations made so far */
#define F(p, k) fd[(p) * 3 + (k)]
#define M(p, k) md[(p) * 3 + (k)]

/* Observation. */
byte held[MAXU];           /* what the engine granted: UN, SH, EX (FileAttempt #granted) */
bool waiting[MAXU];        /* inside an attempt (FileEngine.begin .. #granted / #finish) */
bool inLine[MAXU];         /* past the gate: phase 'main' (a writer holds the gate) */
bool said[MAXU];           /* a reader's announcement is held (gate.ts #announced) */
bool dead[MAXU], stopped[MAXU];
byte faults;

/* Time: the grace since the last touch of the lock file / of the gate (line.ts lastRelease). */
bool graceMain, graceGate;
byte seen[MAXU];           /* 0: no poll since the last touch; 1: one started; 2: one completed */

#define LIVE_DONE(i) ((i) >= NU || !waiting[i] || stopped[i] || dead[i] || seen[i] == 2)
#define ALL_POLLED (LIVE_DONE(0) && LIVE_DONE(1) && LIVE_DONE(2) && LIVE_DONE(3))
#if defined(TIMELESS)
/* Safety runs: whether the grace is over is anyone's guess, at every poll. */
#define UNTIMED
#define TOUCH(flag) skip
#define SEEN(from, to) skip
#elif defined(NO_TICK)
/* Everyone live and prompt: the grace never runs out before a waiter acts. */
#define UNTIMED
#define IN_GRACE(p) 1
#define TOUCH(flag) skip
#define SEEN(from, to) skip
#else
/* What process p reads as the last release: the newer mtime of its lock file and gate. */
#define IN_GRACE(p) (graceMain || (F(p, GT) != NOFD && graceGate))
/* A touch (futimens) starts the grace; every waiter has to poll again before it can end. */
#define TOUCH(flag) d_step { flag = 1; seen[0] = 0; seen[1] = 0; seen[2] = 0; seen[3] = 0 }
#define SEEN(from, to) if :: seen[p] == from -> seen[p] = to :: else -> skip fi
#endif

/* flock(fd, LOCK_NB | want): conflicts with any other description's lock on the inode. */
inline trylock(p, k, want, ok) {
  ok = 1;
  j = 0;
  do
  :: j < NP ->
     if
     :: j != p && F(j, k) == F(p, k) && M(j, k) != UN && (want == EX || M(j, k) == EX) -> ok = 0
     :: else -> skip
     fi;
     j++
  :: else -> break
  od;
  j = 0;
  if
  :: ok -> M(p, k) = want
  :: else -> skip
  fi
}

/* open(path) of an existing file, or (create) lock-file.ts createLockFile + open by name. */
inline openf(p, k, create) {
  if
  :: named[k] != NOFD -> F(p, k) = named[k]
  :: named[k] == NOFD && create -> named[k] = made[k]; made[k]++; F(p, k) = named[k]
  :: else -> skip
  fi
}

/* close(fd): the kernel drops the description's flock with it. */
inline closef(p, k) {
  M(p, k) = UN;
  F(p, k) = NOFD
}

/*
 * engine.ts FileEngine.lockMain: openMain, then lock-file.ts lockNamed (tryLockFd, then
 * stillNamed: fstat of the descriptor against lstat of the path); 'moved' closes and reopens.
 */
inline lockMain(p, want, ok) {
  do
  :: d_step { F(p, LK) == NOFD; openf(p, LK, 1) }          /* engine.ts openMain -> openLockFile */
  :: d_step { F(p, LK) != NOFD; trylock(p, LK, want, ok) }  /* lock-file.ts lockNamed: tryLockFd */
     if
     :: !ok -> break
     :: else ->
#ifdef NO_RECHECK
        break
#else
#if CLEANS > 0
        d_step {                                            /* lock-file.ts stillNamed */
          if
          :: named[LK] == F(p, LK) -> ok = 1
          :: else -> ok = 0; closef(p, LK)                  /* 'moved': engine.ts lockMain closeSync */
          fi
        };
        if
        :: ok -> break
        :: else -> skip
        fi
#else
        break                                               /* nobody unlinks: stillNamed holds */
#endif
#endif
     fi
  od
}

/* line.ts lockGate: openGate (a writer makes it, a reader only opens it), then lockNamed. */
inline lockGate(p, ok) {
#if defined(NO_GATE)
  ok = 1                                                    /* slot.gateless: openCompanion -> -1 */
#elif defined(HAVOC_LINE)
  if :: ok = 1 :: ok = 0 fi
#else
  do
  :: d_step {                                               /* line.ts openGate -> openCompanion */
       F(p, GT) == NOFD;
       openf(p, GT, ex);
       if
       :: F(p, GT) == NOFD -> ok = 1                        /* no gate: nobody in line ahead */
       :: else -> ok = 2
       fi
     };
     if
     :: ok == 1 -> break
     :: else -> skip
     fi
  :: d_step { F(p, GT) != NOFD; trylock(p, GT, (ex -> EX : SH), ok) }  /* lockNamed: tryLockFd */
     if
     :: !ok -> break
     :: else ->
#if CLEANS > 0
        d_step {                                            /* lockNamed: stillNamed */
          if
          :: named[GT] == F(p, GT) -> ok = 1
          :: else -> ok = 0; closef(p, GT)                  /* 'moved': line.ts lockGate closeSync */
          fi
        };
        if
        :: ok -> break
        :: else -> skip
        fi
#else
        break                                               /* nobody unlinks: stillNamed holds */
#endif
     fi
  od
#endif
}

/* line.ts readersWaiting: someone holds the announcement shared (a probe with LOCK_EX). */
inline readersWaiting(p, ok) {
#if defined(NO_GATE)
  ok = 0
#elif defined(HAVOC_LINE)
  if :: ok = 1 :: ok = 0 fi
#else
  d_step { if :: F(p, RW) == NOFD -> openf(p, RW, 0) :: else -> skip fi };  /* openRwait(create = false) */
  if
  :: F(p, RW) == NOFD -> ok = 0                             /* never announced: nobody waits */
  :: else ->
     d_step { trylock(p, RW, EX, ok) };                     /* tryLockFd(rwait, true) */
     if
     :: ok -> d_step { M(p, RW) = UN }; ok = 0              /* unlockFd */
     :: else -> ok = 1
     fi
  fi
#endif
}

/* gate.ts #announce -> line.ts announceReader: openRwait(create = true), tryLockFd shared. */
inline announce(p) {
#if defined(NO_GATE) || defined(HAVOC_LINE)
  skip
#else
  if
  :: !ex && !announced ->
     d_step { if :: F(p, RW) == NOFD -> openf(p, RW, 1) :: else -> skip fi };
     d_step { trylock(p, RW, SH, announced); said[p] = announced }
  :: else -> skip
  fi
#endif
}

/* gate.ts #withdraw -> line.ts withdrawReader. */
inline withdraw(p) {
  if
  :: announced -> d_step { M(p, RW) = UN; said[p] = 0 }; announced = 0
  :: else -> skip
  fi
}

/* gate.ts #leaveGate: unlockFd(gate), then (notify) touchFd(gate). */
inline leaveGate(p, notify) {
  phase = GATE;
  if
  :: F(p, GT) != NOFD ->
     d_step { M(p, GT) = UN };
#ifndef UNTIMED
     if
     :: notify -> TOUCH(graceGate)
     :: else -> skip
     fi
#endif
  :: else -> skip
  fi
}

/*
 * gate.ts #pastTheLine: held back only by a place in line, take a free lock once the grace
 * since its last release is over (lock exclusively first; a reader then converts).
 */
inline pastTheLine(p, past) {
  past = 0;
  d_step {                                                  /* openMain; lastRelease + GRACE_MS - Date.now() */
    if
    :: F(p, LK) == NOFD -> openf(p, LK, 1)
    :: else -> skip
    fi;
#ifdef TIMELESS
    ok = 0
#else
    ok = IN_GRACE(p)
#endif
  };
#ifdef TIMELESS
  if :: ok = 1 :: skip fi;
#endif
#ifndef NO_GRACE
  if
  :: !ok ->                                                 /* the grace is over */
     lockMain(p, EX, ok);
     if
     :: ok && ex -> past = 1
     :: ok && !ex ->
        d_step { M(p, LK) = UN };                           /* flock converts: drop, ... */
        lockMain(p, SH, ok);                                /* ... then take it shared */
        past = ok
     :: else -> skip
     fi
  :: else -> skip                                           /* #graceLeft: poll again when it ends */
  fi
#endif
}

/* gate.ts #granted (after #withdraw): the engine holds the lock for this process now. */
inline grant(p) {
  d_step {
    j = 0;
    do
    :: j < NU ->
       assert(j == p || held[j] == UN || (!ex && held[j] == SH));  /* mutual exclusion */
       j++
    :: else -> break
    od;
    j = 0;
    held[p] = (ex -> EX : SH);
    waiting[p] = 0;
    inLine[p] = 0
  }
}

#ifdef LOCKFILE_ONLY
/*
 * The lock file layer alone: every way FileAttempt.poll uses lockMain, whatever the gate and
 * the announcement answer (they only order waiters: the lock file's flock decides). A
 * failed try is a wait, a cancel or a timeout; the descriptor stays open between attempts.
 */
proctype User(byte p; bit role) {
  bit ex = role;
  byte ok, j;
  {
    do
    ::
#ifdef MIXED
       if :: ex = 0 :: ex = 1 fi;
#endif
       if
       :: lockMain(p, (ex -> EX : SH), ok)                  /* poll: fast path, or past the gate */
       :: lockMain(p, EX, ok);                              /* #pastTheLine: exclusive first, */
          if
          :: ok && !ex ->
             d_step { M(p, LK) = UN };                      /* then a reader converts */
             lockMain(p, SH, ok)
          :: else -> skip
          fi
       fi;
       if
       :: ok ->
          grant(p);
          d_step { held[p] = UN; M(p, LK) = UN; ok = 0 }    /* engine.ts unlock: unlockFd */
       :: else -> skip                                      /* gate.ts wait, or cancel */
       fi
    od
  } unless { dead[p] || stopped[p] };
end_halted:
  dead[p]
}
#else
proctype User(byte p; bit role) {
  bit ex = role;
  byte phase, ok, past, j;
  bit announced, waited;
#if ROUNDS > 0
  byte rounds;
#endif
  {
    do
    ::
#if ROUNDS > 0
       rounds < ROUNDS; rounds++;
#endif
#ifdef MIXED
       if :: ex = 0 :: ex = 1 fi;                           /* each attempt reads or writes */
#endif
       /* engine.ts begin: a new FileAttempt */
       d_step { phase = START; announced = 0; waited = 0; waiting[p] = 1 };
poll:  /* gate.ts FileAttempt.poll */
#ifndef UNTIMED
       atomic { SEEN(0, 1) };
#endif
       if
       :: ex && phase != MAIN ->
          readersWaiting(p, ok);
          if
          :: ok ->                                          /* readers wait: let them go first */
             pastTheLine(p, past);
             if
             :: past -> goto granted
             :: else -> phase = YIELD; goto wait
             fi
          :: else -> skip
          fi
       :: else -> skip
       fi;
       if
       :: phase == START || phase == YIELD ->
          if
          :: ex ->                                          /* the fast path: a free lock, at once */
             lockMain(p, EX, ok);
             if
             :: ok -> goto granted
             :: else -> skip
             fi
          :: else -> skip
          fi;
          phase = GATE
       :: else -> skip
       fi;
       if
       :: phase == GATE ->
          lockGate(p, ok);
          if
          :: !ok ->                                         /* someone is in line ahead */
             pastTheLine(p, past);
             if
             :: past -> goto granted
             :: else -> announce(p); goto wait
             fi
          :: else -> phase = MAIN; inLine[p] = 1
          fi
       :: else -> skip
       fi;
       lockMain(p, (ex -> EX : SH), ok);
       if
       :: ok -> leaveGate(p, waited || ex); goto granted
#ifdef UNTIMED
       :: else -> announce(p); goto wait                    /* (waited only picks a touch) */
#else
       :: else -> waited = 1; announce(p); goto wait
#endif
       fi;
wait:  /* gate.ts wait: an event, the backoff, or the end of the grace */
       atomic { SEEN(1, 2); ok = 0; past = 0 };
       if
       :: goto poll
#ifdef CANCEL
       :: d_step {                                          /* gate.ts cancel: a timeout or abort */
            if
            :: phase == MAIN && F(p, GT) != NOFD -> M(p, GT) = UN
            :: else -> skip
            fi;
            phase = GATE
          };
#ifndef UNTIMED
          if :: F(p, GT) != NOFD -> TOUCH(graceGate) :: else -> skip fi;
#endif
          withdraw(p);                                      /* #finish */
          d_step { waiting[p] = 0; inLine[p] = 0 };
          goto next
#endif
       fi;
granted:
       atomic { ok = 0; past = 0 };
       withdraw(p);
       grant(p);
       /* the holder works; then engine.ts FileEngine.unlock: unlockFd, notifyRelease */
       d_step { held[p] = UN; M(p, LK) = UN };               /* engine.ts unlock: unlockFd */
#ifndef UNTIMED
       TOUCH(graceMain);                                     /* line.ts notifyRelease -> touchFd */
#endif
next:  skip
#if ROUNDS > 0
    :: else -> break
#endif
    od
  } unless { dead[p] || stopped[p] };
end_halted:
  dead[p]                                                   /* stopped: blocks here for ever */
}

#endif

/* cleanup.ts cleanOne, run by another manager (lockwarden clean, cleanupOnStart). */
proctype Cleaner() {
  byte n, ok, j;
  do
  :: n < CLEANS ->
     n++;
     d_step { openf(CL, LK, 0) };                           /* withExisting(lockPath) */
     if
     :: F(CL, LK) == NOFD -> goto done                      /* no lock file */
     :: else -> skip
     fi;
     d_step { trylock(CL, LK, EX, ok) };                    /* tryLockFd(fd, true) */
     if
     :: !ok -> goto close                                   /* held: active, pruneRecordDir only */
     :: else -> skip
     fi;
     if
     :: named[LK] != F(CL, LK) -> goto close                /* stillNamed: replaced meanwhile */
     :: else -> skip
     fi;
#ifdef HAVOC_LINE
     if :: goto close :: skip fi;                           /* a waiter may hold the gate */
#else
     d_step { openf(CL, GT, 0) };                           /* withExisting(gatePath) */
     if
     :: F(CL, GT) != NOFD ->
        d_step { trylock(CL, GT, EX, ok) };                 /* tryLockFd(gate, true) */
        if
        :: !ok -> goto close                                /* a waiter holds its place in line */
        :: else -> named[GT] = NOFD                         /* remove(true): unlinkQuietly(gatePath) */
        fi
     :: else -> skip                                        /* remove(false) */
     fi;
     /* lock-file.ts removeIfFree(rwait): open, tryLockFd exclusive, stillNamed, unlink */
     d_step { openf(CL, RW, 0) };
     if
     :: F(CL, RW) != NOFD ->
        d_step { trylock(CL, RW, EX, ok) };
        if
        :: ok && named[RW] == F(CL, RW) -> named[RW] = NOFD
        :: else -> skip
        fi;
        d_step { closef(CL, RW) }
     :: else -> skip
     fi;
#endif
     named[LK] = NOFD;                                      /* unlinkQuietly(lockPath) */
close: skip;
     d_step { closef(CL, GT); closef(CL, LK) };             /* withExisting closes: the locks go */
done:
     skip
  :: else -> break
  od
}

#if !defined(TIMELESS) && !defined(NO_TICK)
/* The grace ends: GRACE_MS passed since the last touch, and every live waiter has polled. */
active proctype Tick() {
end:
  do
  :: d_step { (graceMain || graceGate) && ALL_POLLED -> graceMain = 0; graceGate = 0 }
  od
}
#endif

#if FAULTS > 0
/* A process is killed (the kernel closes its descriptors) or stops for ever, at any step. */
#ifdef STOP_ONLY
#define KILL(v)
#else
#define KILL(v) \
  :: d_step { \
       faults < FAULTS && (v) < NU && !dead[v] && !stopped[v]; \
       dead[v] = 1; held[v] = UN; waiting[v] = 0; faults++; \
       closef(v, LK); closef(v, GT); closef(v, RW) \
     }
#endif
/* STOP_ONLY (the grace scenario): a waiter that holds no lock file lock stops. */
#ifdef STOP_ONLY
#define STOP_WHEN(v) (waiting[v] && M(v, LK) == UN)
#else
#define STOP_WHEN(v) true
#endif
#define STOP(v) \
  :: d_step { \
       faults < FAULTS && (v) < NU && !dead[v] && !stopped[v] && STOP_WHEN(v); \
       stopped[v] = 1; faults++ \
     }
active proctype Faults() {
end:
  do
  KILL(0) KILL(1) KILL(2) KILL(3)
  STOP(0) STOP(1) STOP(2) STOP(3)
  od
}
#endif

init {
  byte i;
  atomic {
    named[LK] = NOFD; named[GT] = NOFD; named[RW] = NOFD;
#ifdef NO_TICK
    graceMain = 1;                                          /* everyone live: the grace never ends */
#endif
    i = 0;
    do
    :: i < (MAXU + 1) * 3 -> fd[i] = NOFD; i++
    :: else -> break
    od;
    i = 0;
    do
    :: i < NU -> run User(i, i < NW); i++
    :: else -> break
    od;
#if CLEANS > 0
    run Cleaner();
#endif
  }
}

/* Properties. Safety (mutual exclusion) is the assertion in grant(); liveness under weak fairness: */
/* A writer in line (it holds the gate) is granted, while readers come and go. */
ltl writer_in_line { [] (inLine[0] -> <> (held[0] == EX)) }
/* A reader in line (past the gate, announced once it waited) is granted, while writers come and go. */
ltl reader_in_line { [] ((inLine[NW] && said[NW]) -> <> (held[NW] == SH)) }
/* Someone gets the lock again and again (with a stopped waiter: the grace). */
ltl lock_progress { []<> (held[0] != UN || held[1] != UN || held[2] != UN || held[3] != UN) }
/* Stronger, not claimed (see model/README.md): writer 0 / reader NW is granted again and again. */
ltl writer_progress { []<> (held[0] == EX) }
ltl reader_progress { []<> (held[NW] == SH) }
